//! A hostile client, with the API key and without: each case is a row of
//! the hardening table (README, "Limits") and must leave the server
//! serving, with a JSON 4xx where the client is at fault.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

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
