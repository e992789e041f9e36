//! `POST /runs/batch`: `{"post": [...], "patch": [...]}`. Each run is kept
//! as its text until its size is checked, so a run over the limit is
//! refused before a value of it is built.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::json;
use crate::{WireError, WireLimits};
use runhook_core::model::RunWrite;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(default, borrow)]
    post: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    patch: Option<Vec<&'a RawValue>>,
}

/// The posts and patches of a (decompressed) batch body; each has an id.
pub fn decode(bytes: &[u8], limits: &WireLimits) -> Result<(Vec<RunWrite>, Vec<RunWrite>), WireError> {
    let parsed: BatchBody = json(bytes, "batch body")?;
    let (posts, patches) = (parsed.post.unwrap_or_default(), parsed.patch.unwrap_or_default());
    check_runs(posts.len() + patches.len(), limits.max_runs_per_request)?;
    let runs = |kind: &str, list: &[&RawValue]| -> Result<Vec<RunWrite>, WireError> {
        list.iter().enumerate().map(|(i, raw)| run(kind, i, raw, limits.max_run_bytes)).collect()
    };
    Ok((runs("post", &posts)?, runs("patch", &patches)?))
}

/// Refuses a request with more runs than one request may carry.
pub fn check_runs(runs: usize, max: usize) -> Result<(), WireError> {
    if runs > max {
        return Err(WireError::TooLarge(format!(
            "the request carries {runs} runs; at most {max} are accepted (limits.max_runs_per_request)"
        )));
    }
    Ok(())
}

/// Refuses a single-run body larger than a run may be.
pub fn check_run_size(bytes: &[u8], max: usize) -> Result<(), WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge(format!(
            "the run is {} bytes; a run is at most {max} bytes (limits.max_run_bytes)",
            bytes.len()
        )));
    }
    Ok(())
}

/// Parses run `i` of list `kind`, refusing one larger than `max` bytes.
fn run(kind: &str, i: usize, raw: &RawValue, max: usize) -> Result<RunWrite, WireError> {
    let text = raw.get();
    if text.len() > max {
        return Err(WireError::TooLarge(format!(
            "{kind}[{i}] is {} bytes; a run is at most {max} bytes (limits.max_run_bytes)",
            text.len()
        )));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let w: RunWrite = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { format!("{kind}[{i}]") } else { format!("{kind}[{i}].{path}") };
        WireError::Malformed(format!("invalid batch body at {at}: {}", e.into_inner()))
    })?;
    if w.id.is_none() {
        return Err(WireError::Malformed(format!("invalid batch body at {kind}[{i}]: missing field \"id\"")));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: WireLimits = WireLimits {
        max_decompressed_bytes: 1 << 20,
        max_run_bytes: 200,
        max_json_values: 1000,
        max_runs_per_request: 2,
    };

    #[test]
    fn runs_are_sized_counted_and_located() {
        let run = r#"{"id": "0193b8f2-0000-7000-8000-000000000001", "name": "r"}"#;
        let (posts, patches) = decode(format!(r#"{{"post": [{run}]}}"#).as_bytes(), &LIMITS).unwrap();
        assert_eq!((posts.len(), patches.len()), (1, 0));
        let big = format!(
            r#"{{"post": [{run}, {{"id": "0193b8f2-0000-7000-8000-000000000002", "name": "{}"}}]}}"#,
            "x".repeat(300)
        );
        assert!(decode(big.as_bytes(), &LIMITS).unwrap_err().to_string().contains("post[1] is 3"));
        let three = format!(r#"{{"post": [{run}, {run}], "patch": [{run}]}}"#);
        assert!(decode(three.as_bytes(), &LIMITS).unwrap_err().to_string().contains("3 runs; at most 2"));
        let err = decode(br#"{"patch": [{"name": 5}]}"#, &LIMITS).unwrap_err().to_string();
        assert!(err.contains("patch[0].name"), "{err}");
        let err = decode(br#"{"patch": [{"name": "x"}]}"#, &LIMITS).unwrap_err().to_string();
        assert!(err.contains("patch[0]: missing field \"id\""), "{err}");
        assert!(decode(br#"{"pots": []}"#, &LIMITS).unwrap_err().to_string().contains("pots"));
    }
}
