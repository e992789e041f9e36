//! A run as the SDK posts it: any JSON either parses into a write or is
//! refused, and any write either creates a run or is refused, then merges
//! into a stored run as a post and as a patch without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runhook_core::model::{RunId, RunRecord, RunWrite, SessionId, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(w) = serde_json::from_slice::<RunWrite>(data) else { return };
    let now = Timestamp::now();
    let id = RunId::new_v4();
    let Ok(mut run) = RunRecord::create(id, SessionId::new_v4(), w.clone(), now) else { return };
    let _ = run.fill(w.clone(), now);
    let _ = run.patch(w, now);
});
