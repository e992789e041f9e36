//! Large inputs and outputs by link, as LangSmith's webhook page describes:
//! a 5 MB output is delivered as null with `outputs_s3_urls.ROOT.presigned_url`,
//! a link that serves it without the API key, byte for byte, until it
//! expires, and never when its signature or expiry is altered.

use serde_json::{Value, json};

use crate::common::receiver::Receiver;
use crate::common::server::Server;

#[test]
fn a_large_output_is_delivered_as_a_signed_link() {
    let receiver = Receiver::start();
    let server = Server::start_with(&[("RUNHOOK_DELIVERY_IO_LINK_LIFETIME_SECONDS", "5")], None);
    let c = server.client();
    let rule = json!({"display_name": "big", "session_name": "big", "batch_ms": 0, "webhooks": [{"url": receiver.at("/hook")}]});
    assert!(c.post(server.at("/api/v1/runs/rules")).json(&rule).send().unwrap().status().is_success());
    let answer: String = (0..5 * 1024 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let run = json!({"id": "0193b8f2-0000-7000-d000-000000000001", "name": "big", "run_type": "llm",
                     "session_name": "big", "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z",
                     "inputs": {"q": "small"}, "outputs": {"answer": answer}});
    assert!(c.post(server.at("/runs/batch")).json(&json!({"post": [run]})).send().unwrap().status().is_success());
    let started = std::time::Instant::now();
    while receiver.received().is_empty() {
        assert!(started.elapsed().as_secs() < 300, "no delivery");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = receiver.received()[0].clone();
    let sent = &got.body["runs"][0];
    assert_eq!(sent["inputs"], json!({"q": "small"}), "small inputs stay inline");
    assert_eq!(sent["inputs_s3_urls"], Value::Null);
    assert_eq!(sent["outputs"], Value::Null, "the large outputs are left out");
    let link = sent["outputs_s3_urls"]["ROOT"]["presigned_url"].as_str().unwrap().to_string();
    assert!(link.starts_with("/runs/0193b8f2-0000-7000-d000-000000000001/io/outputs?"), "{link}");
    assert!(got.body.to_string().len() < 64 * 1024, "the payload stays small");

    // No API key: the link is the authority.
    let plain = reqwest::blocking::Client::new();
    let fetched = plain.get(server.at(&link)).send().unwrap();
    assert_eq!(fetched.status(), 200);
    let outputs: Value = serde_json::from_str(&fetched.text().unwrap()).unwrap();
    assert_eq!(outputs["answer"].as_str().map(str::len), Some(answer.len()));
    assert!(outputs["answer"] == answer.as_str(), "the output came back byte for byte");

    let (path, query) = link.split_once('?').unwrap();
    let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap().to_string();
    let (expires, sig) = (param("expires").parse::<i64>().unwrap(), param("sig"));
    let mut altered = sig.clone();
    altered.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
    for bad in [
        format!("{path}?expires={expires}&sig={altered}"),
        format!("{path}?expires={}&sig={sig}", expires + 3600),
        format!("{}?expires={expires}&sig={sig}", path.replace("outputs", "inputs")),
        path.to_string(),
    ] {
        assert_eq!(plain.get(server.at(&bad)).send().unwrap().status(), 401, "{bad}");
    }
    // Once expired, refused.
    while chrono::Utc::now().timestamp() <= expires {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(plain.get(server.at(&link)).send().unwrap().status(), 401);
}
