"""The dashboard in a real browser: Debian's headless Chromium driven
through chromedriver (W3C WebDriver, with Selenium as the client; nothing
downloads a browser), against the real binary, with runs traced by the
real SDK and webhooks to a real receiver.

Screenshots of every page go to target/screenshots/<store>/ (CI keeps
them as artifacts). The main flow is driven with the keyboard only:
Tab to a control, type, Enter or Space.
"""

import base64
import os
import shutil
import subprocess
import time
import uuid

import pytest
import requests
from langsmith import traceable, tracing_context
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import API_KEY, ON_POSTGRES, REPO, api, wait_for
from receiver import Receiver

SHOTS = REPO / "target" / "screenshots" / ("postgres" if ON_POSTGRES else "sqlite")
HEADER_VALUE = "Bearer never-shown-7f3a9c"
WASM = REPO / "plugins" / "rust" / "target" / "wasm32-wasip2" / "release"
CHROMIUM = os.environ.get("RUNHOOK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RUNHOOK_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module", autouse=True)
def built_plugins():
    if not (WASM / "output_score.wasm").exists():
        subprocess.run([str(REPO / "plugins" / "build.sh")], check=True, capture_output=True)


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} is missing: tests/run.sh installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root in a container, without a GPU, on a machine with no route
    # out: nothing that would phone home.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    yield driver
    driver.quit()


def shot(driver, name):
    """The whole page as a PNG, not only what the window shows (Chromium's DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
    (SHOTS / f"{name}.png").write_bytes(base64.b64decode(png["data"]))


def wait(driver, predicate, timeout=60.0, what="the page"):
    """Polls `predicate(driver)` until truthy (elements may be replaced as the page re-renders)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate(driver)
            if value:
                return value
        except StaleElementReferenceException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; page text: {driver.find_element(By.TAG_NAME, 'body').text[:2000]}")
        time.sleep(0.1)


def heading(driver, text):
    return wait(driver, lambda d: any(text in h.text for h in d.find_elements(By.TAG_NAME, "h1")), what=f"heading {text!r}")


def active(driver):
    return driver.switch_to.active_element


def tab_to(driver, element_id=None, text=None, limit=80):
    """Presses Tab until the focused element has `element_id` (or shows `text`): what a keyboard user does."""
    for _ in range(limit):
        el = active(driver)
        if (element_id and el.get_attribute("id") == element_id) or (text and el.text.strip() == text):
            return el
        # A key press to whatever has focus (an element's send_keys would type into a file input).
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"Tab never reached {element_id or text!r}")


def type_into(driver, element_id, value):
    el = tab_to(driver, element_id)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(value)


def unlabelled(driver):
    """Form controls with no label: ids of inputs, selects and textareas no <label for> or aria-label names."""
    return driver.execute_script(
        """return [...document.querySelectorAll('input, select, textarea')]
             .filter(el => el.type !== 'hidden')
             .filter(el => !(el.id && document.querySelector(`label[for="${el.id}"]`)) && !el.getAttribute('aria-label'))
             .map(el => el.outerHTML.slice(0, 80));"""
    )


def trace(client, project, items):
    """Traces a chain per item with an LLM call inside; the LLM call errors when the item says so."""

    @traceable(run_type="llm", name="Model")
    def model(prompt, fail):
        if fail:
            raise RuntimeError(f"RateLimitError: {prompt}")
        return {"output": f"answer to {prompt}"}

    @traceable(run_type="chain", name="Pipeline")
    def pipeline(prompt, fail):
        try:
            return model(prompt, fail)
        except RuntimeError:
            return {"output": "fallback"}

    with tracing_context(client=client, project_name=project, enabled=True):
        for prompt, fail in items:
            pipeline(prompt, fail)
    client.flush()



def test_sign_in_and_sessions(server, browser):
    """A wrong key is refused; the right one gives an HttpOnly, SameSite=Strict
    session whose changes need the CSRF token; every page sends a strict CSP."""
    page = requests.get(server.url + "/", timeout=10)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    for path in ("/ui/rules", "/ui/assets/app.js"):
        assert "script-src 'self'" in requests.get(server.url + path, timeout=10).headers["content-security-policy"]

    browser.get(server.url + "/")
    heading(browser, "Sign in")
    key = tab_to(browser, "api_key")
    key.send_keys("rh_not_the_key_000000", Keys.ENTER)
    wait(browser, lambda d: "not this server's API key" in d.find_element(By.ID, "api_key-error").text, what="the refusal")
    assert key.get_attribute("aria-invalid") == "true"
    shot(browser, "01-sign-in-refused")
    assert unlabelled(browser) == []

    # The session, as a script would try to use it.
    s = requests.Session()
    assert s.post(server.url + "/ui/session", json={"api_key": "wrong"}, timeout=10).status_code == 401
    signed = s.post(server.url + "/ui/session", json={"api_key": API_KEY}, timeout=10)
    assert signed.status_code == 200, signed.text
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    assert s.get(server.url + "/api/v1/runs/rules", timeout=10).status_code == 200
    rule = {"display_name": "csrf", "session_name": "csrf", "webhooks": [{"url": "https://hooks.example.com/x"}]}
    refused = s.post(server.url + "/api/v1/runs/rules", json=rule, timeout=10)
    assert refused.status_code == 403 and "x-csrf-token" in refused.json()["detail"], refused.text
    forged = s.post(server.url + "/api/v1/runs/rules", json=rule, headers={"x-csrf-token": "0" * 64}, timeout=10)
    assert forged.status_code == 403
    token = signed.json()["csrf"]
    made = s.post(server.url + "/api/v1/runs/rules", json=rule, headers={"x-csrf-token": token}, timeout=10)
    assert made.status_code == 200, made.text
    assert s.delete(server.url + f"/api/v1/runs/rules/{made.json()['id']}", headers={"x-csrf-token": token}, timeout=10).ok
    assert requests.get(server.url + "/api/v1/runs/rules", cookies={"runhook_session": "1.2.3"}, timeout=10).status_code == 401


def test_a_rule_from_invalid_filter_to_redelivery(server, client, project, browser):
    receiver = Receiver()
    try:
        run_flow(server, client, project, browser, receiver)
    finally:
        receiver.close()


def run_flow(server, client, project, browser, receiver):
    # Stored runs for the trial: two LLM calls fail, one succeeds.
    trace(client, project, [("q-old-1", True), ("q-old-2", False), ("q-old-3", True)])
    wait_for(lambda: len(list(client.list_runs(project_name=project, error=True))) == 2, timeout=60)

    # Sign in, keyboard only.
    browser.get(server.url + "/")
    heading(browser, "Sign in")
    type_into(browser, "api_key", API_KEY)
    active(browser).send_keys(Keys.ENTER)
    heading(browser, "Rules")
    assert browser.execute_script("return document.cookie") == "", "the session cookie is readable by scripts"
    shot(browser, "02-rules-empty")

    # A new rule with an invalid filter: the error is shown at the filter, with its position.
    tab_to(browser, text="New rule").send_keys(Keys.ENTER)
    heading(browser, "New rule")
    assert unlabelled(browser) == []
    type_into(browser, "display_name", "Failed LLM calls")
    type_into(browser, "session_name", project)
    type_into(browser, "filter", 'and(eq(run_type, "llm"), eq(status, "error")')
    type_into(browser, "webhook_url", receiver.url + "/hook")
    type_into(browser, "webhook_headers", f"Authorization: {HEADER_VALUE}")
    type_into(browser, "batch_ms", "0")
    tab_to(browser, "save").send_keys(Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "filter-error").text, what="the filter's error")
    assert "position" in error and "filter" in error, error
    assert browser.find_element(By.ID, "filter").get_attribute("aria-invalid") == "true"
    assert active(browser).get_attribute("id") == "filter", "focus did not move to the field in error"
    shot(browser, "03-rule-invalid-filter")
    assert api(server, "GET", "/runs/rules").json() == [], "an invalid rule was saved"

    # Fixed, then tried on the stored runs: the two failed LLM calls.
    type_into(browser, "filter", 'and(eq(run_type, "llm"), eq(status, "error"))')
    tab_to(browser, "try").send_keys(Keys.ENTER)
    summary = wait(browser, lambda d: d.find_elements(By.ID, "trial-summary") and d.find_element(By.ID, "trial-summary").text,
                   what="the trial")
    assert "2 would be acted on" in summary, summary
    assert browser.find_element(By.ID, "filter-error").text == ""
    trial_text = browser.find_element(By.TAG_NAME, "main").text
    assert trial_text.count("RateLimitError") >= 2, trial_text
    shot(browser, "04-rule-trial")
    assert receiver.bodies() == [] and api(server, "GET", "/deliveries").json() == [], "the trial sent something"

    # Saved: the signing secret is shown once.
    tab_to(browser, "save").send_keys(Keys.ENTER)
    secret = wait(browser, lambda d: d.find_elements(By.ID, "signing-secret") and d.find_element(By.ID, "signing-secret").text,
                  what="the signing secret")
    assert secret.startswith("whsec_")
    shot(browser, "05-rule-saved-secret")
    rule = api(server, "GET", "/runs/rules").json()[0]
    assert rule["has_signing_secret"] and secret not in str(rule)

    # New matching runs, traced with the SDK, are delivered and listed.
    trace(client, project, [("q-new-1", True)])
    wait_for(lambda: len(receiver.bodies()) >= 1, timeout=120)
    browser.get(server.url + "/ui/deliveries")
    heading(browser, "Deliveries")
    wait(browser, lambda d: "delivered" in d.find_element(By.TAG_NAME, "tbody").text, what="the delivered delivery")
    shot(browser, "06-deliveries")
    assert unlabelled(browser) == []

    # The receiver fails; the failed delivery is redelivered from its page.
    receiver.status = 404
    trace(client, project, [("q-new-2", True)])
    failed = wait_for(lambda: api(server, "GET", "/deliveries?status=failed").json(), timeout=120)[0]
    receiver.status = 200
    browser.get(server.url + "/ui/deliveries?status=failed")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-delivery="{failed["id"]}"]'), what="the failed delivery")
    browser.find_element(By.CSS_SELECTOR, f'tr[data-delivery="{failed["id"]}"] a[href^="/ui/deliveries/"]').click()
    heading(browser, "Delivery")
    wait(browser, lambda d: "Attempt 1" in d.find_element(By.ID, "timeline").text, what="the first attempt")
    tab_to(browser, "redeliver").send_keys(Keys.ENTER)

    def second_attempt(d):
        timeline = d.find_elements(By.ID, "timeline")
        if timeline and "Attempt 2" in timeline[0].text:
            return timeline[0].text
        d.find_element(By.XPATH, "//button[text()='Refresh']").click()
        time.sleep(0.3)
        return None

    timeline = wait(browser, second_attempt, timeout=120, what="the second attempt")
    assert "HTTP 404" in timeline and "success" in timeline, timeline
    shot(browser, "07-delivery-timeline")

    # After an outage: every failed delivery of the last hour, counted, then redelivered.
    receiver.status = 404
    trace(client, project, [("q-new-3", True)])
    wait_for(lambda: api(server, "GET", "/deliveries?status=failed").json(), timeout=120)
    receiver.status = 200
    before = len(receiver.bodies())
    browser.get(server.url + "/ui/deliveries")
    heading(browser, "Deliveries")
    tab_to(browser, text="Count them").send_keys(Keys.ENTER)
    confirm = wait(browser, lambda d: d.find_elements(By.XPATH, "//button[starts-with(text(), 'Redeliver 1 failed')]"),
                   what="the count")[0]
    assert active(browser) == confirm, "focus did not move to the confirmation"
    shot(browser, "08-bulk-redelivery-count")
    confirm.send_keys(Keys.ENTER)
    wait(browser, lambda d: "1 delivery queued again" in d.find_element(By.TAG_NAME, "main").text, what="the bulk redelivery")
    wait_for(lambda: len(receiver.bodies()) == before + 1, timeout=120)

    # The rule's page: its cycles and log; disable, enable and trigger from the keyboard.
    browser.get(server.url + f"/ui/rules/{rule['id']}")
    heading(browser, "Failed LLM calls")
    wait(browser, lambda d: "Model (llm)" in d.find_element(By.TAG_NAME, "main").text, what="the rule's log")
    assert "Authorization" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "09-rule")
    tab_to(browser, text="Disable").send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.XPATH, "//button[text()='Enable']"), what="the rule disabled")
    assert api(server, "GET", f"/runs/rules/{rule['id']}").json()["is_enabled"] is False
    tab_to(browser, text="Enable").send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.XPATH, "//button[text()='Disable']"), what="the rule enabled")
    assert api(server, "GET", f"/runs/rules/{rule['id']}").json()["is_enabled"] is True
    tab_to(browser, text="Run a cycle now").send_keys(Keys.ENTER)
    wait(browser, lambda d: "Triggered" in d.find_element(By.TAG_NAME, "main").text, what="the trigger")

    # Edited: a bad interval is shown at its field; the webhooks, kept, keep their header.
    tab_to(browser, text="Edit").send_keys(Keys.ENTER)
    heading(browser, "Edit")
    type_into(browser, "interval_seconds", "0")
    tab_to(browser, "save").send_keys(Keys.ENTER)
    bad = wait(browser, lambda d: d.find_element(By.ID, "interval_seconds-error").text, what="the interval's error")
    assert "interval_seconds" in bad, bad
    type_into(browser, "interval_seconds", "30")
    tab_to(browser, "save").send_keys(Keys.ENTER)
    heading(browser, "Failed LLM calls")
    wait(browser, lambda d: "at least every 30 s" in d.find_element(By.TAG_NAME, "main").text, what="the edited rule")
    edited = api(server, "GET", f"/runs/rules/{rule['id']}").json()
    assert edited["webhooks"][0]["headers"] == {"Authorization": "***"} and edited["has_signing_secret"], edited

    # Plugins: upload one, see its capability.
    browser.get(server.url + "/ui/plugins")
    heading(browser, "Plugins")
    browser.find_element(By.ID, "p-file").send_keys(str(WASM / "output_score.wasm"))
    type_into(browser, "p-name", "usefulness")
    tab_to(browser, text="Upload").send_keys(Keys.ENTER)
    wait(browser, lambda d: "usefulness" in d.find_element(By.TAG_NAME, "main").text
         and "evaluate" in d.find_element(By.TAG_NAME, "tbody").text, what="the uploaded plugin")
    assert unlabelled(browser) == []
    shot(browser, "10-plugins")
    browser.get(server.url + "/ui/rules")
    heading(browser, "Rules")
    wait(browser, lambda d: "Failed LLM calls" in d.find_element(By.TAG_NAME, "tbody").text, what="the rules list")
    shot(browser, "11-rules")

    # Runs: a located filter error, then the run and its trace.
    browser.get(server.url + "/ui/runs")
    heading(browser, "Runs")
    type_into(browser, "filter", "eq(status")
    active(browser).send_keys(Keys.TAB, Keys.ENTER)
    located = wait(browser, lambda d: d.find_element(By.ID, "filter-error").text, what="the runs filter's error")
    assert "position" in located, located
    type_into(browser, "filter", 'eq(status, "error")')
    active(browser).send_keys(Keys.TAB, Keys.ENTER)
    wait(browser, lambda d: "Model" in d.find_element(By.TAG_NAME, "main").text and not d.find_element(By.ID, "filter-error").text,
         what="the runs")
    shot(browser, "12-runs")
    assert unlabelled(browser) == []
    browser.find_element(By.LINK_TEXT, "Model").click()
    heading(browser, "Model")
    main_text = wait(browser, lambda d: "Pipeline (chain)" in d.find_element(By.TAG_NAME, "main").text
                     and d.find_element(By.TAG_NAME, "main").text, what="the trace tree")
    assert "Failed LLM calls" in main_text, f"the run page does not show the rule that acted on it: {main_text}"
    shot(browser, "13-run")

    browser.get(server.url + "/ui/health")
    heading(browser, "Health")
    wait(browser, lambda d: "Outbox depth" in d.find_element(By.TAG_NAME, "main").text, what="the health page")
    shot(browser, "14-health")

    # The header value never comes back: not on a page, not in a response.
    for path in ("/ui/rules", f"/ui/rules/{rule['id']}", f"/ui/rules/{rule['id']}/edit", "/ui/deliveries",
                 f"/ui/deliveries/{failed['id']}"):
        browser.get(server.url + path)
        wait(browser, lambda d: d.find_elements(By.TAG_NAME, "h1") and "Sign in" not in d.find_element(By.TAG_NAME, "h1").text)
        time.sleep(0.5)
        assert HEADER_VALUE not in browser.page_source, path
    assert unlabelled(browser) == []
    for path in ("/runs/rules", f"/runs/rules/{rule['id']}", "/deliveries", f"/deliveries/{failed['id']}",
                 f"/runs/rules/{rule['id']}/logs"):
        assert HEADER_VALUE not in api(server, "GET", path).text, path
    # No script error and no policy violation (a refused request's 4xx is logged too, and is expected).
    # Deleted through its dialog, keyboard only.
    browser.get(server.url + f"/ui/rules/{rule['id']}")
    heading(browser, "Failed LLM calls")
    tab_to(browser, text="Delete").send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "dialog").get_attribute("open") is not None, what="the dialog")
    shot(browser, "15-rule-delete-dialog")
    tab_to(browser, text="Delete").send_keys(Keys.ENTER)
    heading(browser, "Rules")
    wait_for(lambda: api(server, "GET", "/runs/rules").json() == [], timeout=30)

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    assert severe == [], severe


def sign_in(browser, server, path):
    browser.get(server.url + path)
    wait(browser, lambda d: d.find_elements(By.TAG_NAME, "h1"), what="a page")
    if "Sign in" in browser.find_element(By.TAG_NAME, "h1").text:
        type_into(browser, "api_key", API_KEY)
        active(browser).send_keys(Keys.ENTER)
        wait(browser, lambda d: "Sign in" not in d.find_element(By.TAG_NAME, "h1").text, what="signed in")


def test_a_reviewer_works_through_a_queue(server, client, project, browser):
    trace(client, project, [("review-1", False), ("review-2", True)])
    roots = wait_for(lambda: (r := list(client.list_runs(project_name=project, is_root=True))) and len(r) == 2 and r,
                     timeout=60)
    queue = client.create_annotation_queue(name=f"review-{project}", rubric_instructions="Is the answer right?")
    client.add_runs_to_annotation_queue(queue.id, runs=[
        {"run_id": r.id, "session_id": r.session_id, "start_time": r.start_time} for r in reversed(roots)])
    sign_in(browser, server, "/ui/queues")
    heading(browser, "Annotation queues")
    assert unlabelled(browser) == []
    tab_to(browser, text=queue.name).send_keys(Keys.ENTER)
    heading(browser, queue.name)
    wait(browser, lambda d: "Run 1 of 2 runs to review" in d.find_element(By.ID, "review-position").text, what="the first run")
    assert "Is the answer right?" in browser.find_element(By.TAG_NAME, "main").text
    assert unlabelled(browser) == []
    first = roots[-1]
    type_into(browser, "r-score", "0")
    type_into(browser, "r-correction", '{"output": "fixed"}')
    shot(browser, "16-queue-review")
    tab_to(browser, "done").send_keys(Keys.ENTER)
    wait(browser, lambda d: "Run 1 of 1 run to review" in d.find_element(By.ID, "review-position").text, what="the next run")
    feedback = wait_for(lambda: list(client.list_feedback(run_ids=[first.id], feedback_key=["correctness"])), timeout=30)
    assert feedback[0].score == 0 and feedback[0].correction == {"output": "fixed"}
    tab_to(browser, "done").send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.ID, "queue-empty"), what="the empty queue")
    done = list(client.list_runs_from_annotation_queue(queue.id, status="completed"))
    assert {r.id for r in done} == {r.id for r in roots}


def test_a_rule_fills_a_dataset_made_on_the_dashboard(server, client, project, browser):
    # A stored LLM call for the trial.
    trace(client, project, [("ds-old", False)])
    wait_for(lambda: len(list(client.list_runs(project_name=project, run_type="llm"))) == 1, timeout=60)

    # A dataset, created on its page with the keyboard.
    name = f"answers-{project}"
    sign_in(browser, server, "/ui/datasets")
    heading(browser, "Datasets")
    assert unlabelled(browser) == []
    type_into(browser, "d-name", name)
    active(browser).send_keys(Keys.ENTER)
    wait(browser, lambda d: name in d.find_element(By.TAG_NAME, "main").text, what="the new dataset")
    dataset = client.read_dataset(dataset_name=name)
    shot(browser, "17-datasets")

    # A rule adding each LLM call to it: tried first (one example would be
    # made, none is), then saved. "Threads" shows the idle time.
    browser.get(server.url + "/ui/rules/new")
    heading(browser, "New rule")
    assert unlabelled(browser) == []
    type_into(browser, "display_name", "Answers to the dataset")
    type_into(browser, "session_name", project)
    type_into(browser, "filter", 'eq(run_type, "llm")')
    tab_to(browser, "add_to_dataset_id").send_keys(name)
    assert not browser.find_element(By.ID, "thread_idle_seconds").is_displayed()
    tab_to(browser, "group_by").send_keys("t")
    wait(browser, lambda d: d.find_element(By.ID, "thread_idle_seconds").is_displayed(), what="the idle time")
    active(browser).send_keys(Keys.UP)
    wait(browser, lambda d: not d.find_element(By.ID, "thread_idle_seconds").is_displayed(), what="each run again")
    tab_to(browser, "try").send_keys(Keys.ENTER)
    wait(browser, lambda d: "Examples the dataset would get" in d.find_element(By.TAG_NAME, "main").text, what="the trial's examples")
    shot(browser, "18-rule-trial-dataset")
    assert list(client.list_examples(dataset_id=dataset.id)) == [], "the trial made an example"
    tab_to(browser, "new_secret").send_keys(Keys.SPACE)
    tab_to(browser, "save").send_keys(Keys.ENTER)
    heading(browser, "Answers to the dataset")
    wait(browser, lambda d: name in d.find_element(By.TAG_NAME, "main").text, what="the rule's dataset")

    # Runs traced now become examples; the dataset's page lists them, and one is deleted.
    trace(client, project, [("ds-new-1", False), ("ds-new-2", False)])
    wait_for(lambda: len(list(client.list_examples(dataset_id=dataset.id))) == 2, timeout=120)
    tab_to(browser, text=name).send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.ID, "dataset-count") and "2 examples" in d.find_element(By.ID, "dataset-count").text,
         what="the dataset's examples")
    assert "answer to ds-new-1" in browser.find_element(By.TAG_NAME, "main").text
    assert unlabelled(browser) == []
    shot(browser, "19-dataset")
    tab_to(browser, text="Delete").send_keys(Keys.ENTER)
    wait(browser, lambda d: "1 example" in d.find_element(By.ID, "dataset-count").text, what="the deletion")
    assert len(list(client.list_examples(dataset_id=dataset.id))) == 1


def test_an_alert_backtested_on_the_dashboard(server, project, browser):
    # Three hours of a run a minute; those started 120 to 101 minutes ago errored.
    now = time.time()
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
    runs = [{"id": str(uuid.uuid4()), "name": "call", "run_type": "llm", "session_name": project,
             "start_time": stamp(now - 60 * i), "end_time": stamp(now - 60 * i + 1),
             "error": "RateLimitError" if 101 <= i <= 120 else None} for i in range(1, 181)]
    resp = requests.post(server.url + "/runs/batch", json={"post": runs}, headers={"x-api-key": API_KEY}, timeout=30)
    assert resp.status_code < 300, resp.text

    sign_in(browser, server, "/ui/alerts")
    heading(browser, "Alerts")
    assert unlabelled(browser) == []
    type_into(browser, "session_name", project)
    type_into(browser, "hours", "3")
    tab_to(browser, "backtest").send_keys(Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "warning-error").text, what="the missing threshold")
    assert "threshold" in error and active(browser).get_attribute("id") == "warning", error
    type_into(browser, "warning", "0.2")
    type_into(browser, "critical", "0.5")
    tab_to(browser, "backtest").send_keys(Keys.ENTER)
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#backtest-events tbody tr"), what="the backtest's events")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["triggered: warning", "triggered: critical", "resolved"]
    assert browser.find_element(By.ID, "backtest-chart").get_attribute("aria-label").startswith("The metric over 180 evaluations")
    shot(browser, "20-alert-backtest")

    # Saved: without a webhook it is refused at the field; with one it is listed, evaluated, then deleted.
    tab_to(browser, "save-alert").send_keys(Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "webhook_url-error").text, what="the missing webhook")
    assert "webhook" in error and active(browser).get_attribute("id") == "webhook_url", error
    receiver = Receiver()
    try:
        type_into(browser, "webhook_url", receiver.url + "/alert")
        # In PagerDuty's format: refused at the key's field until the key is given.
        tab_to(browser, "format").send_keys("p")
        assert browser.find_element(By.ID, "routing_key").is_displayed()
        tab_to(browser, "save-alert").send_keys(Keys.ENTER)
        error = wait(browser, lambda d: d.find_element(By.ID, "routing_key-error").text, what="the missing routing key")
        assert "routing_key" in error and active(browser).get_attribute("id") == "routing_key", error
        type_into(browser, "routing_key", "R0UT1NGKEY")
        tab_to(browser, "save-alert").send_keys(Keys.ENTER)
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved-alerts tbody tr"), what="the saved alert")
        saved = api(server, "GET", "/alerts").json()
        assert [a["display_name"] for a in saved] == ["Error rate"] and saved[0]["session_name"] == project
        assert saved[0]["webhooks"][0]["format"]["builtin"] == "pagerduty"
        assert saved[0]["webhooks"][0]["format"]["config"]["routing_key"] == "***"
        wait_for(lambda: api(server, "GET", f"/alerts/{saved[0]['id']}").json()["state"]["evaluated_at"], timeout=120)
        browser.refresh()
        heading(browser, "Alerts")
        row = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved-alerts tbody tr"), what="the saved alert")[0]
        assert "ok" in row.text, row.text
        assert unlabelled(browser) == []
        shot(browser, "21-alerts-saved")
        # Edited in place: the form takes its fields; saving PATCHes and keeps its webhook.
        tab_to(browser, text="Edit").send_keys(Keys.ENTER)
        assert active(browser).get_attribute("id") == "display_name"
        assert browser.find_element(By.ID, "critical").get_attribute("value") == "0.5"
        type_into(browser, "critical", "0.9")
        tab_to(browser, "save-alert").send_keys(Keys.ENTER)
        wait_for(lambda: api(server, "GET", f"/alerts/{saved[0]['id']}").json()["critical"] == 0.9, timeout=30)
        edited = api(server, "GET", f"/alerts/{saved[0]['id']}").json()
        assert edited["webhooks"][0]["format"]["builtin"] == "pagerduty", "the webhook was kept"
        heading(browser, "Alerts")
        tab_to(browser, text="Pause").send_keys(Keys.ENTER)
        wait_for(lambda: api(server, "GET", f"/alerts/{saved[0]['id']}").json()["is_enabled"] is False, timeout=30)
        wait(browser, lambda d: "disabled" in d.find_element(By.ID, "saved-alerts").text, what="the paused alert")
        tab_to(browser, text="Delete").send_keys(Keys.ENTER)
        wait(browser, lambda d: "No alert saved yet." in d.find_element(By.TAG_NAME, "main").text, what="the deletion")
        assert api(server, "GET", "/alerts").json() == []
    finally:
        receiver.close()
