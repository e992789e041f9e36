//! Request bodies: the first byte picks the encoding (none, zstd, gzip);
//! decompression stays within its limit, and the JSON value count bounds
//! what parsing builds.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runhook_wire::body::{check_values, decompress, json, json_values};

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let encoding = match first % 4 {
        0 => None,
        1 => Some("zstd"),
        2 => Some("gzip"),
        _ => Some("identity"),
    };
    let Ok(body) = decompress(encoding, Bytes::copy_from_slice(rest), MAX) else { return };
    assert!(body.len() <= MAX);
    if check_values(&body, || "the body".into(), &mut 0, 10_000).is_ok()
        && let Ok(value) = json::<serde_json::Value>(&body, "body")
    {
        // The count is an upper bound on what was built.
        assert!(count(&value) <= json_values(&body));
    }
});

fn count(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(count).sum::<usize>(),
        serde_json::Value::Object(map) => 1 + map.values().map(|v| 1 + count(v)).sum::<usize>(),
        _ => 1,
    }
}
