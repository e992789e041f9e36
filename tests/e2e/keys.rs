//! `runhook keys rotate` on a shared database while two replicas serve:
//! they read one key file, take each step's keys without a restart, and
//! deliver every run (webhook URL, header and signing secret opened under
//! whichever key sealed them) before, during and after the rotation; at
//! the end no stored value is sealed under the old key and the file holds
//! the new key only. Runs in the suite's Postgres pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::receiver::Receiver;
use crate::common::runhook;
use crate::common::server::{API_KEY, Server, fresh_database};

/// The ids of the keys in a key file (first 8 hex digits of each key's SHA-256).
fn key_ids(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let raw = lines.map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap());
    raw.map(|k| Sha256::digest(&k)[..4].iter().map(|b| format!("{b:02x}")).collect()).collect()
}

fn sealed_under(db: &str, id: &str) -> i64 {
    let sql = format!(
        "SELECT (SELECT count(*) FROM rules WHERE spec LIKE '%enc:v1:{id}:%') + \
                (SELECT count(*) FROM outbox WHERE url LIKE 'enc:v1:{id}:%' OR headers LIKE '%enc:v1:{id}:%' \
                 OR signing_secret LIKE '%enc:v1:{id}:%')"
    );
    let out = std::process::Command::new("psql").arg(db).args(["-qtAXc", &sql]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn batch(from: usize, n: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (from..from + n).map(|i| format!("0193b8f2-0000-7000-a000-{i:012}")).collect();
    let posts: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "name": "rotating", "run_type": "chain", "session_name": "keys",
                   "start_time": "2026-12-04T10:00:00Z", "end_time": "2026-12-04T10:00:01Z"})
        })
        .collect();
    (ids, json!({"post": posts}))
}

#[test]
fn keys_rotate_while_replicas_serve() {
    let Some(pg) = std::env::var("RUNHOOK_E2E_DATABASE").ok().filter(|s| !s.is_empty()) else {
        eprintln!("skipped: replicas share a Postgres database; set RUNHOOK_E2E_DATABASE (tests/run.sh does)");
        return;
    };
    let db = fresh_database(&pg, "keys");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("mounted/secret.key");
    let key_path = key_file.to_str().unwrap();
    let env =
        [("RUNHOOK_DATABASE_URL", db.as_str()), ("RUNHOOK_SECRET_KEY_FILE", key_path), ("RUNHOOK_LEASE_MS", "2000")];
    // The first replica creates the key file; the second reads it.
    let a = Server::start_on(&dir.path().join("a"), &env);
    let b = Server::start_on(&dir.path().join("b"), &env);
    let old = key_ids(&key_file);
    assert_eq!(old.len(), 1);

    let receiver = Receiver::start();
    let c = a.client();
    let rule = json!({"display_name": "rotating", "session_name": "keys", "interval_seconds": 1,
                      "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                      "webhooks": [{"url": receiver.at("/hook?token=s3cret"), "headers": {"x-team": "ml-secret"}}]});
    let resp = c.post(a.at("/api/v1/runs/rules")).json(&rule).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    assert!(sealed_under(&db, &old[0]) > 0, "the rule's secrets are sealed under the first key");

    // Runs keep arriving, through both replicas in turn, while the keys rotate.
    let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (sent, stop) = (sent.clone(), stop.clone());
        let urls = [a.at("/runs/batch"), b.at("/runs/batch")];
        let client = a.client();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (ids, body) = batch(i * 10, 10);
                let resp = client.post(&urls[i % 2]).json(&body).send().unwrap();
                assert!(resp.status().is_success(), "ingest answered {}", resp.status());
                sent.lock().unwrap().extend(ids);
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // Run as the replicas are: with their environment.
    let out = runhook()
        .args(["keys", "rotate", "--database", &db, "--wait-seconds", "120"])
        .env("RUNHOOK_API_KEY", API_KEY)
        .env("RUNHOOK_SECRET_KEY_FILE", key_path)
        .env("RUNHOOK_DATA_DIR", dir.path().join("tool"))
        .env_remove("RUNHOOK_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "keys rotate failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1/3") && stdout.contains("2/3") && stdout.contains("3/3"), "{stdout}");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();

    let new = key_ids(&key_file);
    assert_eq!(new.len(), 1, "the file holds the new key only");
    assert_ne!(new, old);
    assert_eq!(sealed_under(&db, &old[0]), 0, "nothing is sealed under the old key any more");
    assert!(sealed_under(&db, &new[0]) > 0);

    // A replica restarted now, with the file as it is, serves as well.
    drop(b);
    let b = Server::start_on(&dir.path().join("b"), &env);
    let (late, body) = batch(1_000_000, 5);
    assert!(b.client().post(b.at("/runs/batch")).json(&body).send().unwrap().status().is_success());

    let wanted: HashSet<String> = sent.lock().unwrap().iter().cloned().chain(late).collect();
    let got = receiver.wait_until("every run delivered", |r| {
        let delivered: HashSet<String> = r.iter().flat_map(|r| r.run_ids()).collect();
        wanted.is_subset(&delivered)
    });
    for r in &got {
        assert_eq!(r.query.as_deref(), Some("token=s3cret"), "the URL opened whole");
        assert_eq!(r.headers.get("x-team").map(|v| v.to_str().unwrap()), Some("ml-secret"));
        assert!(r.headers.get("webhook-signature").is_some_and(|v| v.to_str().unwrap().starts_with("v1,")));
    }
    eprintln!("keys: {} runs delivered in {} requests across the rotation", wanted.len(), got.len());
    drop(a);
}
