//! What the fuzz targets share: the limits bodies are decoded within, small
//! enough that the fuzzer reaches every refusal.

use runhook_wire::WireLimits;

/// Limits for the body, batch and multipart targets.
pub const LIMITS: WireLimits = WireLimits {
    max_decompressed_bytes: 1 << 20,
    max_run_bytes: 4096,
    max_json_values: 10_000,
    max_runs_per_request: 50,
};
