//! `POST /runs/multipart` bodies: decoded within the limits or refused.
#![no_main]

use bytes::Bytes;
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use runhook_fuzz::LIMITS;

fuzz_target!(|data: &[u8]| {
    // The body is one in-memory chunk, so decoding never waits.
    let decoded = runhook_wire::multipart::decode(
        "multipart/form-data; boundary=XbOuNdArYx",
        Bytes::copy_from_slice(data),
        &LIMITS,
    )
    .now_or_never()
    .expect("decoding an in-memory body never waits");
    if let Ok(batch) = decoded {
        assert!(batch.posts.len() + batch.patches.len() <= LIMITS.max_runs_per_request);
    }
});
