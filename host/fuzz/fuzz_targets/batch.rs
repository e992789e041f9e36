//! `POST /runs/batch` bodies: decoded within the limits or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runhook_fuzz::LIMITS;

fuzz_target!(|data: &[u8]| {
    if let Ok((posts, patches)) = runhook_wire::batch::decode(data, &LIMITS) {
        assert!(posts.len() + patches.len() <= LIMITS.max_runs_per_request);
        assert!(posts.iter().chain(&patches).all(|w| w.id.is_some()));
    }
});
