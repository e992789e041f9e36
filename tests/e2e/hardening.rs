//! A hostile client, with the API key and without: each case is a row of
//! the hardening table (README, "Limits") and must leave the server
//! serving, with a JSON 4xx where the client is at fault.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::expect;
use crate::common::server::Server;

/// Reads what the server sends until it closes the connection.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// More idle clients than the server has file descriptors: the ones over
/// the cap get a JSON 503 at once, and the server serves again as soon as
/// the idle ones go.
#[test]
fn connections_over_the_cap_are_refused_with_a_reason() {
    let server = Server::start_with(&[("RUNHOOK_HEADER_TIMEOUT_MS", "600000")], Some(256));
    // 256 files less 64 kept free: 192 served; the kernel's accept queue
    // keeps the order, so the last 108 are the ones refused.
    let mut idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    for stream in &mut idle[192..] {
        let answer = read_until_closed(stream);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains(r#"{"detail":"the server is at its limit of 192 connections; retry later"}"#));
    }
    drop(idle);
    // The server notices the closed connections; /healthz gets through.
    let client = reqwest::blocking::Client::new();
    let status = (0..600)
        .find_map(|_| match client.get(server.at("/healthz")).send() {
            Ok(r) if r.status() == StatusCode::OK => Some(r.status()),
            _ => {
                std::thread::sleep(Duration::from_millis(100));
                None
            }
        })
        .expect("the server serves again once idle clients leave");
    assert_eq!(status, StatusCode::OK);
}

/// A client that sends no header, half a header, or nothing after its
/// last response is closed once the header timeout passes, and never
/// holds the server meanwhile.
#[test]
fn idle_and_slow_clients_are_closed_after_the_header_timeout() {
    let server = Server::start_with(&[("RUNHOOK_HEADER_TIMEOUT_MS", "1000")], None);
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut kept_alive = TcpStream::connect(server.addr()).unwrap();
    kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_until_closed(&mut silent), "");
    assert_eq!(read_until_closed(&mut slow), "");
    let answer = read_until_closed(&mut kept_alive);
    assert!(answer.starts_with("HTTP/1.1 200"), "one answer, then closed when idle: {answer}");
    assert_eq!(reqwest::blocking::get(server.at("/healthz")).unwrap().status(), StatusCode::OK);
}

/// A rule's plugin path cannot read files outside the plugins directory,
/// tell whether they exist, or hang the server on a device or a FIFO.
#[test]
fn plugin_paths_read_nothing_outside_the_plugins_directory() {
    let plugins = tempfile::tempdir().unwrap();
    let fifo = plugins.path().join("fifo.wasm");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("/etc/passwd", plugins.path().join("passwd.wasm")).unwrap();
    let dir = plugins.path().to_str().unwrap();
    let server = Server::start_with(&[("RUNHOOK_PLUGINS_DIR", dir)], None);
    let client = server.client();
    let create = |path: &str| -> (StatusCode, String) {
        let rule = json!({"display_name": "r", "session_name": "p", "plugins": {"evaluate": {"path": path}}});
        let resp = client.post(server.at("/runs/rules")).json(&rule).timeout(Duration::from_secs(60)).send().unwrap();
        let status = resp.status();
        let body: Value = resp.json().expect("a JSON error");
        let detail = body["detail"].as_str().unwrap_or_default().replace(path, "PATH");
        // The plugin's name is the file's stem, which differs by path.
        (status, detail.split_once("PATH").map_or(detail.clone(), |(_, rest)| rest.to_string()))
    };
    let outside: Vec<(StatusCode, String)> = [
        "/etc/shadow",
        "/proc/self/environ",
        "../../etc/passwd",
        "/etc/no-such-file",
        "/dev/zero",
        &format!("{dir}/passwd.wasm"),
        &format!("{dir}/../../../../etc/passwd"),
    ]
    .iter()
    .map(|p| create(p))
    .collect();
    for answer in &outside {
        assert_eq!(answer, &outside[0], "every path outside reads the same");
    }
    assert_eq!(outside[0].0, StatusCode::BAD_REQUEST);
    assert!(outside[0].1.contains("is not a readable plugin file"), "{}", outside[0].1);
    let (status, detail) = create(fifo.to_str().unwrap());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(detail.contains("not a regular file"), "{detail}");
    assert_eq!(reqwest::blocking::get(server.at("/healthz")).unwrap().status(), StatusCode::OK);
}

fn run(id: &str) -> Value {
    json!({"id": id, "name": "r", "run_type": "chain", "start_time": "2026-11-22T10:00:00Z", "session_name": "h"})
}

fn stored(server: &Server, id: &str) -> bool {
    server.client().get(server.at(&format!("/runs/{id}"))).send().unwrap().status() == StatusCode::OK
}

/// Bytes after the JSON value, and a second gzip member, are never
/// silently dropped: the first is refused, the second read whole.
#[test]
fn trailing_bytes_are_refused_and_every_gzip_member_is_read() {
    let server = Server::start();
    let c = server.client();
    let id = "0193b8f2-0000-7000-8000-00000000a001";
    let body = format!(r#"{{"post":[{}]}} }}}}}}garbage"#, run(id));
    let resp = c.post(server.at("/runs/batch")).header("content-type", "application/json").body(body).send().unwrap();
    expect(resp, StatusCode::BAD_REQUEST, "after the JSON value");
    assert!(!stored(&server, id));

    // `{"post": [...]` and `}` in two members: one body, stored.
    let member = |text: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    };
    let text = format!(r#"{{"post":[{}]"#, run(id));
    let body = [member(text.as_bytes()), member(b"}")].concat();
    let resp = c.post(server.at("/runs/batch")).header("content-encoding", "gzip").body(body).send().unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(stored(&server, id));
}

/// Lists and numbers out of range: a 400 naming the limit, never a 500 or
/// a silently different answer.
#[test]
fn list_sizes_and_offsets_are_range_checked() {
    let server = Server::start();
    let c = server.client();
    let ids: Vec<String> = (0..32_766).map(|i| format!("0193b8f2-0000-7000-8000-{i:012x}")).collect();
    let resp = c.post(server.at("/runs/query")).json(&json!({"id": ids, "limit": 1})).send().unwrap();
    expect(resp, StatusCode::BAD_REQUEST, "id has 32766 items; at most 1000 are accepted (limits.max_list_items)");
    let resp = c.post(server.at("/runs/query")).json(&json!({"id": &ids[..1000], "limit": 1})).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let huge = "18446744073709551615";
    for path in ["/deliveries", "/sessions", "/feedback"] {
        let resp = c.get(server.at(&format!("{path}?offset={huge}"))).send().unwrap();
        expect(resp, StatusCode::BAD_REQUEST, "offset=18446744073709551615 exceeds the maximum of 10000000");
    }
    let runs: Vec<Value> = (0..10_001).map(|i| run(&format!("0193b8f2-0000-7000-8000-{i:012x}"))).collect::<Vec<_>>();
    let resp = c.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
    expect(resp, StatusCode::PAYLOAD_TOO_LARGE, "10001 runs; at most 10000 are accepted (limits.max_runs_per_request)");
}

/// Errors no handler writes are JSON too: 404, 405, a path segment that is
/// not UTF-8 once decoded, a header block too large.
#[test]
fn every_error_body_is_json() {
    let server = Server::start();
    let c = server.client();
    expect(c.get(server.at("/nowhere")).send().unwrap(), StatusCode::NOT_FOUND, "no route for /nowhere");
    expect(c.delete(server.at("/healthz")).send().unwrap(), StatusCode::METHOD_NOT_ALLOWED, "DELETE is not allowed");
    expect(c.get(server.at("/runs/%FF%FE")).send().unwrap(), StatusCode::BAD_REQUEST, "UTF-8");
    expect(c.get(server.at("/runs/rules/%FF/logs?offset=1")).send().unwrap(), StatusCode::BAD_REQUEST, "UTF-8");
    let mut many = c.get(server.at("/healthz"));
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "v");
    }
    expect(many.send().unwrap(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "at most 100 headers");
    let big = c.get(server.at("/healthz")).header("x-big", "v".repeat(100 * 1024));
    expect(big.send().unwrap(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "of 65536 bytes");
    let long = server.at(&format!("/runs/query?q={}", "a".repeat(20 * 1024)));
    expect(c.get(long).send().unwrap(), StatusCode::URI_TOO_LONG, "at most 16384");
}

/// An attachment is served as a download that no browser renders in the
/// server's origin, whatever type its uploader claimed.
#[test]
fn attachments_are_served_as_sandboxed_downloads() {
    let server = Server::start();
    let c = server.client();
    let id = "0193b8f2-0000-7000-8000-00000000b001";
    let boundary = "XbOuNdArYx";
    let mut body = Vec::new();
    for (name, ctype, data) in [
        (format!("post.{id}"), "application/json", run(id).to_string()),
        (format!("attachment.{id}.page"), "text/html", "<script>alert(document.cookie)</script>".to_string()),
    ] {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n{data}\r\n"
        )
        .unwrap();
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    let resp = c
        .post(server.at("/runs/multipart"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let view: Value = c.get(server.at(&format!("/runs/{id}"))).send().unwrap().json().unwrap();
    let url = view["s3_urls"]["attachment.page"]["presigned_url"].as_str().expect("a signed URL").to_string();
    // Signed URLs are relative to the API's base, as the SDK resolves them.
    let resp = reqwest::blocking::get(server.at(url.trim_start_matches(&server.url))).unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-disposition"], "attachment; filename=\"page\"");
    assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
}

/// What one rule may ask for is bounded, and the header message means
/// what it says.
#[test]
fn rule_caps_are_enforced() {
    let server = Server::start();
    let c = server.client();
    let create = |webhooks: Value| {
        let rule = json!({"display_name": "r", "session_name": "p", "webhooks": webhooks});
        c.post(server.at("/runs/rules")).json(&rule).send().unwrap()
    };
    let eleven: Vec<Value> = (0..11).map(|i| json!({"url": format!("http://127.0.0.1:9/{i}")})).collect();
    expect(create(json!(eleven)), StatusCode::BAD_REQUEST, "webhooks: 11 given; at most 10 are allowed");
    let long = format!("http://127.0.0.1:9/{}", "a".repeat(3000));
    expect(create(json!([{"url": long}])), StatusCode::BAD_REQUEST, "longer than 2048 bytes");
    expect(create(json!([{"url": "http://127.0.0.1:0/x"}])), StatusCode::BAD_REQUEST, "port 0");
    let accented = json!([{"url": "http://127.0.0.1:9/x", "headers": {"x-team": "équipe"}}]);
    expect(create(accented), StatusCode::BAD_REQUEST, "visible ASCII");
    let ten: Vec<Value> = (0..10).map(|i| json!({"url": format!("http://127.0.0.1:9/{i}")})).collect();
    assert_eq!(create(json!(ten)).status(), StatusCode::OK);
}

/// The log has no colour codes when it is not written to a terminal.
#[test]
fn a_log_file_gets_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runhook"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .env("RUNHOOK_API_KEY", crate::common::server::API_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    // Served once: the line announcing it has been logged.
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(reqwest::blocking::get(format!("{url}/healthz")).unwrap().status(), StatusCode::OK);
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(text.contains("runhook serving"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text:?}");
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::blocking::get(server.at("/metrics")).unwrap().text().unwrap();
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).map_or(0.0, |v| v.parse().unwrap())
}

/// A pathological filter over long fields: `/healthz` answers while it
/// runs, a client that gives up stops it, and the deadline ends it.
#[test]
fn a_pathological_filter_cannot_monopolise_the_server() {
    let server = Server::start_with(&[("RUNHOOK_REQUEST_TIMEOUT_MS", "3000")], None);
    let c = server.client();
    let long = "a".repeat(1_000_000);
    for batch in 0..4 {
        let runs: Vec<Value> = (0..10)
            .map(|i| {
                let mut r = run(&format!("0193b8f2-0000-7000-8000-{:012x}", batch * 10 + i));
                r["error"] = json!(long);
                r["end_time"] = json!("2026-11-22T10:00:01Z");
                r
            })
            .collect();
        let resp = c.post(server.at("/runs/batch")).json(&json!({"post": runs})).send().unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    // A 10,002-character segment with a wildcard: the old matcher took
    // O(text x pattern) per run; even now each run is real work.
    let filter = format!("like(error, '%{}_b%')", "a".repeat(10_000));
    let query = json!({"filter": filter, "limit": 1});

    // The client gives up after a second; the evaluation stops with it.
    let gone = c.post(server.at("/runs/query")).json(&query).timeout(Duration::from_secs(1)).send();
    assert!(gone.is_err(), "the query answered within a second: {gone:?}");
    let health = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    assert_eq!(health.get(server.at("/healthz")).send().unwrap().status(), StatusCode::OK);
    let stopped = r#"runhook_filter_evaluations_stopped_total{reason="abandoned"}"#;
    let waited = (0..1200).find(|_| {
        let seen = metric(&server, stopped) >= 1.0;
        if !seen {
            std::thread::sleep(Duration::from_millis(100));
        }
        seen
    });
    assert!(waited.is_some(), "the abandoned evaluation did not stop");

    // A client that waits gets the deadline, as a 422 naming the setting.
    let resp = c.post(server.at("/runs/query")).json(&query).send().unwrap();
    expect(resp, StatusCode::UNPROCESSABLE_ENTITY, "limits.request_timeout_ms");
    assert_eq!(health.get(server.at("/healthz")).send().unwrap().status(), StatusCode::OK);
}

const MIB: u64 = 1 << 20;

/// The server's peak memory grows by at most `factor` times `size` (plus
/// 64 MiB of slack for allocator and runtime) over what it was before `f`.
fn within_memory<T>(server: &Server, size: u64, factor: u64, f: impl FnOnce() -> T) -> T {
    let before = server.peak_rss();
    let out = f();
    let growth = server.peak_rss().saturating_sub(before);
    eprintln!("peak RSS grew by {} MiB for {} MiB ({factor}x allowed)", growth / MIB, size / MIB);
    assert!(growth <= factor * size + 64 * MIB, "peak RSS grew by {} MiB for {} MiB", growth / MIB, size / MIB);
    out
}

/// A compression bomb of tiny values, and a plain body of them, are
/// refused before they are parsed, in memory proportional to the body.
#[test]
fn memory_is_proportional_to_the_request() {
    let server = Server::start();
    let c = server.client();
    // A 12 MB run of one long string: stored, and read back lean or whole.
    let big = "x".repeat(12 * 1000 * 1000);
    let mut r = run("0193b8f2-0000-7000-8000-00000000c002");
    r["inputs"] = json!({"document": big});
    let resp = within_memory(&server, 12 * MIB, 4, || c.post(server.at("/runs")).json(&r).send().unwrap());
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let lean = within_memory(&server, MIB, 1, || {
        let q = json!({"limit": 1, "select": ["id", "name"]});
        c.post(server.at("/runs/query")).json(&q).send().unwrap().json::<Value>().unwrap()
    });
    assert_eq!(lean["runs"][0]["name"], "r");
    let whole = within_memory(&server, 12 * MIB, 4, || {
        c.get(server.at("/runs/0193b8f2-0000-7000-8000-00000000c002")).send().unwrap().json::<Value>().unwrap()
    });
    assert_eq!(whole["inputs"]["document"].as_str().map(str::len), Some(12 * 1000 * 1000));

    // 250 MB of `0,` inflated from a few hundred kilobytes of zstd.
    let zeros = 125 * 1000 * 1000;
    let mut text = Vec::with_capacity(2 * zeros + 200);
    text.extend_from_slice(br#"{"post":[{"id":"0193b8f2-0000-7000-8000-00000000c001","name":"r","run_type":"chain","start_time":"2026-11-22T10:00:00Z","inputs":{"x":["#);
    for _ in 0..zeros - 1 {
        text.extend_from_slice(b"0,");
    }
    text.extend_from_slice(b"0]}}]}");
    let bomb = zstd::encode_all(&text[..], 19).unwrap();
    let size = text.len() as u64;
    drop(text);
    let resp = within_memory(&server, size, 3, || {
        c.post(server.at("/runs/batch")).header("content-encoding", "zstd").body(bomb).send().unwrap()
    });
    expect(resp, StatusCode::PAYLOAD_TOO_LARGE, "limits.max_json_values");

    // Over the run size: refused, naming the run and the setting.
    r["inputs"] = json!({"document": "x".repeat(17 * 1000 * 1000)});
    let resp = c
        .post(server.at("/runs/batch"))
        .json(&json!({"post": [run("0193b8f2-0000-7000-8000-00000000c003"), r]}))
        .send()
        .unwrap();
    expect(resp, StatusCode::PAYLOAD_TOO_LARGE, "post[1] is 17000");
}
