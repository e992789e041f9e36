//! Bad input on every ingest and read endpoint: each gets a 4xx naming the
//! problem, nothing is stored, and the server keeps serving. Plus crash
//! safety: what was acknowledged survives a kill -9.

use std::io::Write;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::common::expect;
use crate::common::server::Server;

const SEED: &str = "0193b8f2-4f1c-7a2e-9d3b-6c5e4a3b2c1d";

fn run(id: &str) -> Value {
    json!({"id": id, "name": "seed", "run_type": "chain", "start_time": "2026-11-22T10:00:00Z",
           "session_name": "input-tests", "inputs": {"q": "hi"}})
}

fn seeded() -> (Server, Client) {
    let server = Server::start();
    let client = server.client();
    let resp = client.post(server.at("/runs")).json(&run(SEED)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    (server, client)
}

fn all_runs(server: &Server, client: &Client) -> Vec<Value> {
    let resp: Value = client.post(server.at("/runs/query")).json(&json!({})).send().unwrap().json().unwrap();
    resp["runs"].as_array().unwrap().clone()
}

/// One multipart part: name, content type, bytes.
type Part<'a> = (&'a str, &'a str, &'a [u8]);

fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "XbOuNdArYx";
    let mut body = Vec::new();
    for (name, ctype, data) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Malformed bodies on every write endpoint are 4xx with a message saying
/// what and where; none of them stores anything.
#[test]
fn malformed_writes_are_refused_and_store_nothing() {
    let (server, c) = seeded();
    let before = all_runs(&server, &c);
    assert_eq!(before.len(), 1);
    let new_id = "0193b8f2-0000-7000-8000-000000000001";

    expect(c.post(server.at("/runs")).body("{not json").send().unwrap(), StatusCode::BAD_REQUEST, "invalid run");
    let mut wrong = run(new_id);
    wrong["start_time"] = json!(5);
    expect(c.post(server.at("/runs")).json(&wrong).send().unwrap(), StatusCode::BAD_REQUEST, "start_time");
    let mut wrong = run(new_id);
    wrong["run_type"] = json!("banana");
    expect(c.post(server.at("/runs")).json(&wrong).send().unwrap(), StatusCode::BAD_REQUEST, "run_type");
    let mut wrong = run(new_id);
    wrong["inputs"] = json!([1, 2]);
    expect(c.post(server.at("/runs")).json(&wrong).send().unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "inputs");
    let mut wrong = run(new_id);
    wrong["id"] = json!("not-a-uuid");
    expect(c.post(server.at("/runs")).json(&wrong).send().unwrap(), StatusCode::BAD_REQUEST, "id");
    expect(c.post(server.at("/runs")).json(&run(SEED)).send().unwrap(), StatusCode::CONFLICT, "already exists");

    // Patches: unknown run, bad path id, mismatched body id.
    let end = json!({"end_time": "2026-11-22T10:00:01Z"});
    expect(c.patch(server.at(&format!("/runs/{new_id}"))).json(&end).send().unwrap(), StatusCode::NOT_FOUND, new_id);
    expect(c.patch(server.at("/runs/nope")).json(&end).send().unwrap(), StatusCode::BAD_REQUEST, "not a UUID");
    let body = json!({"id": new_id, "end_time": "2026-11-22T10:00:01Z"});
    expect(
        c.patch(server.at(&format!("/runs/{SEED}"))).json(&body).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "differs",
    );
    let early = json!({"end_time": "2026-11-21T10:00:00Z"});
    expect(
        c.patch(server.at(&format!("/runs/{SEED}"))).json(&early).send().unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "before start_time",
    );

    // Batch: a good post beside a bad patch stores neither.
    let batch = json!({"post": [run(new_id)], "patch": [{"end_time": "2026-11-22T10:00:01Z"}]});
    expect(c.post(server.at("/runs/batch")).json(&batch).send().unwrap(), StatusCode::BAD_REQUEST, "patch[0]");
    let batch = json!({"post": [run(new_id)], "pots": []});
    expect(c.post(server.at("/runs/batch")).json(&batch).send().unwrap(), StatusCode::BAD_REQUEST, "pots");

    // Multipart: a good part followed by a bad one stores nothing.
    let good = serde_json::to_vec(&run(new_id)).unwrap();
    let cases: Vec<(Vec<Part<'_>>, &str)> = vec![
        (
            vec![
                ("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good),
                ("post.zzz", "application/json", b"{}"),
            ],
            "not a UUID",
        ),
        (
            vec![
                ("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good),
                ("bogus.x", "application/json", b"{}"),
            ],
            "unknown multipart part",
        ),
        (
            vec![
                ("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good),
                ("post.0193b8f2-0000-7000-8000-000000000001.inputs", "application/json", b"{oops"),
            ],
            "inputs",
        ),
        (vec![("patch.0193b8f2-0000-7000-8000-000000000002.outputs", "application/json", b"{}")], "comes before"),
        (
            vec![
                ("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good),
                (
                    "feedback.0193b8f2-0000-7000-8000-0000000000f1",
                    "application/json",
                    br#"{"run_id": "0193b8f2-0000-7000-8000-000000000001"}"#,
                ),
            ],
            "key",
        ),
        (
            vec![
                ("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good),
                ("attachment.0193b8f2-0000-7000-8000-000000000001.a.b", "image/png", b"x"),
            ],
            "attachment names",
        ),
    ];
    for (parts, needle) in cases {
        let (ctype, body) = multipart(&parts);
        let resp = c.post(server.at("/runs/multipart")).header("content-type", ctype).body(body).send().unwrap();
        assert!(resp.status().is_client_error(), "{needle}: {}", resp.status());
        let detail: Value = resp.json().unwrap();
        assert!(detail["detail"].as_str().unwrap().contains(needle), "{needle}: {detail}");
    }
    let (ctype, body) = multipart(&[("post.0193b8f2-0000-7000-8000-000000000001", "application/json", &good)]);
    let truncated = &body[..body.len() - 20];
    expect(
        c.post(server.at("/runs/multipart")).header("content-type", ctype).body(truncated.to_vec()).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "incomplete",
    );
    expect(
        c.post(server.at("/runs/multipart")).header("content-type", "multipart/form-data").body("x").send().unwrap(),
        StatusCode::BAD_REQUEST,
        "boundary",
    );
    expect(
        c.post(server.at("/runs/multipart")).header("content-type", "application/json").body("{}").send().unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "multipart/form-data",
    );

    // Feedback: missing key, unknown run, wrong score type.
    expect(
        c.post(server.at("/feedback")).json(&json!({"run_id": SEED})).send().unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "key",
    );
    expect(
        c.post(server.at("/feedback")).json(&json!({"run_id": new_id, "key": "k"})).send().unwrap(),
        StatusCode::NOT_FOUND,
        new_id,
    );
    expect(
        c.post(server.at("/feedback")).json(&json!({"run_id": SEED, "key": "k", "score": "high"})).send().unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "score",
    );

    // Reads: bad ids, bad cursors, bad paging parameters.
    expect(c.get(server.at("/runs/xyz")).send().unwrap(), StatusCode::BAD_REQUEST, "not a UUID");
    expect(c.get(server.at(&format!("/runs/{new_id}"))).send().unwrap(), StatusCode::NOT_FOUND, new_id);
    expect(
        c.post(server.at("/runs/query")).json(&json!({"cursor": "garbage!"})).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "cursor",
    );
    expect(
        c.post(server.at("/runs/query")).json(&json!({"limit": "ten"})).send().unwrap(),
        StatusCode::BAD_REQUEST,
        "limit",
    );
    expect(c.get(server.at("/feedback?limit=-1")).send().unwrap(), StatusCode::BAD_REQUEST, "limit");
    expect(c.get(server.at("/sessions/abc")).send().unwrap(), StatusCode::BAD_REQUEST, "not a UUID");

    let after = all_runs(&server, &c);
    assert_eq!(after, before, "nothing stored, nothing changed");
    assert_eq!(c.get(server.at("/healthz")).send().unwrap().status(), StatusCode::OK);
}

/// Compressed bodies: corrupt ones are 400, bombs and oversized bodies 413,
/// unknown encodings 415; valid zstd and gzip are accepted.
#[test]
fn compression_and_size_limits() {
    let (server, c) = seeded();
    let id = "0193b8f2-0000-7000-8000-0000000000aa";
    let body = serde_json::to_vec(&run(id)).unwrap();
    let zstd = zstd::encode_all(&body[..], 3).unwrap();
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let send = |encoding: &str, bytes: Vec<u8>| {
        c.post(server.at("/runs"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(bytes)
            .send()
            .unwrap()
    };
    expect(send("zstd", b"definitely not zstd".to_vec()), StatusCode::BAD_REQUEST, "corrupt zstd");
    expect(send("gzip", b"definitely not gzip".to_vec()), StatusCode::BAD_REQUEST, "corrupt gzip");
    expect(send("br", body.clone()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Encoding");
    let bomb = zstd::encode_all(&vec![b' '; 300 << 20][..], 19).unwrap();
    expect(send("zstd", bomb), StatusCode::PAYLOAD_TOO_LARGE, "decompressed");
    let huge = vec![b' '; 65 << 20];
    expect(send("identity", huge), StatusCode::PAYLOAD_TOO_LARGE, "exceeds");
    assert_eq!(all_runs(&server, &c).len(), 1);

    assert_eq!(send("zstd", zstd).status(), StatusCode::ACCEPTED);
    let id2 = "0193b8f2-0000-7000-8000-0000000000ab";
    let gz_other = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&serde_json::to_vec(&run(id2)).unwrap()).unwrap();
        e.finish().unwrap()
    };
    drop(gzip);
    assert_eq!(send("gzip", gz_other).status(), StatusCode::ACCEPTED);
    assert_eq!(all_runs(&server, &c).len(), 3);
}

/// Every route but `/info` and health needs the key, at `/` and `/api/v1`.
#[test]
fn api_key_is_required() {
    let server = Server::start();
    let anon = reqwest::blocking::Client::new();
    for path in ["/runs/query", "/api/v1/runs/query"] {
        let resp = anon.post(server.at(path)).json(&json!({})).send().unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp =
            anon.post(server.at(path)).header("x-api-key", "rh_wrong_key_0123456789").json(&json!({})).send().unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/info", "/api/v1/info", "/healthz", "/readyz"] {
        assert_eq!(anon.get(server.at(path)).send().unwrap().status(), StatusCode::OK, "{path}");
    }
    let info: Value = anon.get(server.at("/info")).send().unwrap().json().unwrap();
    for key in [
        "use_multipart_endpoint",
        "size_limit",
        "scale_up_nthreads_limit",
        "scale_up_qsize_trigger",
        "size_limit_bytes",
    ] {
        assert!(!info["batch_ingest_config"][key].is_null(), "/info lacks batch_ingest_config.{key}");
    }
    assert_eq!(info["instance_flags"]["zstd_compression_enabled"], true);
    let resp = server.client().get(server.at("/api/v1/nowhere")).send().unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Without a configured key, one is generated at first start, stored with
/// mode 0600, and kept across restarts.
#[test]
fn a_key_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = || {
        let mut cmd = crate::common::runhook();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).env_remove("RUNHOOK_API_KEY");
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let first = start();
    let key = std::fs::read_to_string(data.join("api_key")).unwrap();
    assert!(key.starts_with("rh_") && first.contains(&key), "the new key is printed once");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(data.join("api_key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let second = start();
    assert!(!second.contains(&key), "and never again");
    assert_eq!(std::fs::read_to_string(data.join("api_key")).unwrap(), key);
}

/// Acknowledged writes survive kill -9; re-sending the same batch after the
/// restart is idempotent.
#[test]
fn acknowledged_runs_survive_a_crash() {
    let (server, c) = seeded();
    let ids: Vec<String> = (0..50).map(|i| format!("0193b8f2-0000-7000-8000-{i:012}")).collect();
    let batch = json!({"post": ids.iter().map(|id| run(id)).collect::<Vec<_>>()});
    assert_eq!(c.post(server.at("/runs/batch")).json(&batch).send().unwrap().status(), StatusCode::ACCEPTED);
    let server = server.crash_and_restart();
    let c = server.client();
    assert_eq!(all_runs(&server, &c).len(), 51);
    assert_eq!(c.post(server.at("/runs/batch")).json(&batch).send().unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(all_runs(&server, &c).len(), 51);
}

/// With `require_https`, a plain http webhook is refused when the rule is
/// saved, naming the field and the setting; an https one is taken.
#[test]
fn plain_http_webhooks_are_refused_when_https_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&dir.path().join("data"), &[("RUNHOOK_DELIVERY_REQUIRE_HTTPS", "true")]);
    let client = server.client();
    let rule = |url: &str| {
        json!({"display_name": format!("to {url}"), "session_name": "https-only",
               "webhooks": [{"url": url}]})
    };
    let resp =
        client.post(server.at("/api/v1/runs/rules")).json(&rule("http://hooks.example.com/x?token=t0k3n")).send();
    let resp = resp.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let detail = resp.json::<Value>().unwrap()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("webhooks[0].url") && detail.contains("plain http"), "{detail}");
    assert!(!detail.contains("t0k3n"), "{detail}");
    let ok = client.post(server.at("/api/v1/runs/rules")).json(&rule("https://hooks.example.com/x")).send().unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "{}", ok.text().unwrap_or_default());
}
