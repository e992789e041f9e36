//! Deterministic sampling: the same rule and run always draw the same
//! number, so a run is either always or never in a rule's sample, whatever
//! cycle sees it, and restarts change nothing.

use sha2::{Digest, Sha256};

use runhook_core::model::{RuleId, RunId};

/// Whether `run` is in `rule`'s sample at `rate` (0 = none, 1 = all).
pub fn sampled(rule: RuleId, run: RunId, rate: f64) -> bool {
    drawn(rule, run.0.as_bytes(), rate)
}

/// Whether thread `thread` is in thread rule `rule`'s sample at `rate`:
/// a thread is in or out whole, in every idle period.
pub fn thread_sampled(rule: RuleId, thread: &str, rate: f64) -> bool {
    drawn(rule, thread.as_bytes(), rate)
}

fn drawn(rule: RuleId, key: &[u8], rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let mut h = Sha256::new();
    h.update(rule.0.as_bytes());
    h.update(key);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits give a uniform float in [0, 1).
    let draw = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    draw < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_zero_half_and_one() {
        let rule = RuleId::new_v4();
        let runs: Vec<RunId> = (0..4000).map(|_| RunId::new_v4()).collect();
        assert!(runs.iter().all(|r| !sampled(rule, *r, 0.0)));
        assert!(runs.iter().all(|r| sampled(rule, *r, 1.0)));
        let half: Vec<bool> = runs.iter().map(|r| sampled(rule, *r, 0.5)).collect();
        let n = half.iter().filter(|b| **b).count();
        assert!((1800..2200).contains(&n), "{n} of 4000 sampled at 0.5");
        let again: Vec<bool> = runs.iter().map(|r| sampled(rule, *r, 0.5)).collect();
        assert_eq!(half, again, "stable across cycles");
        let other = RuleId::new_v4();
        assert_ne!(half, runs.iter().map(|r| sampled(other, *r, 0.5)).collect::<Vec<_>>(), "independent per rule");
    }
}
