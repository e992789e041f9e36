//! A hostile client, with the API key and without: each case is a row of
//! the hardening table (README, "Limits") and must leave the server
//! serving, with a JSON 4xx where the client is at fault.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::server::Server;

/// Reads what the server sends until it closes the connection.
fn read_until_closed(stream: &mut TcpStream) -> String {
    // Generous: the server closes after its 1 s header timeout.
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close an idle connection: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Idle and slow-header connections are closed after the header timeout,
/// connections over the cap are refused with a JSON 503, and the server
/// answers again once the idle ones are gone, even with more idle clients
/// than it has file descriptors.
#[test]
fn idle_and_slow_clients_cannot_starve_the_server() {
    let server = Server::start_with(&[("RUNHOOK_HEADER_TIMEOUT_MS", "1000")], Some(256));
    let mut idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut refused = 0;
    for stream in idle.iter_mut().chain(std::iter::once(&mut slow)) {
        let answer = read_until_closed(stream);
        if answer.is_empty() {
            continue;
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "unexpected answer to an idle client: {answer}");
        assert!(answer.contains(r#""detail":"the server is at its limit of 192 connections"#), "{answer}");
        refused += 1;
    }
    // 256 files less 64 kept free: 192 served, the rest refused.
    assert!(refused >= 300 + 1 - 192, "only {refused} connections were refused");
    let resp = reqwest::blocking::get(server.at("/healthz")).unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
