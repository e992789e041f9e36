//! Health at a glance: this process's metrics over the last hour
//! (`GET /health/series`), for the dashboard's charts.
//!
//! The Prometheus registry only knows totals since start. [`HealthHistory`]
//! keeps a sample of the totals the dashboard shows every
//! [`SAMPLE_EVERY`] for an hour ([`sample_loop`]), and the endpoint answers
//! the differences between consecutive samples (and from the last one to
//! now): deliveries by outcome, rule cycles that failed, plugin calls by
//! outcome, runs ingested per interval; the outbox's depth and oldest age
//! as they were; the plugins' p99 call duration over the hour from the
//! histogram's bucket counts. Counters are this process's (on Postgres,
//! each replica's own); the outbox figures are the store's, for all.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use runhook_core::model::Timestamp;

/// How often a sample is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// Samples kept: an hour's, and the one before it.
const KEEP: usize = 241;

/// The totals one sample holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// `runhook_deliveries_total` by outcome.
    pub deliveries: BTreeMap<String, f64>,
    /// `runhook_rule_cycles_total` by outcome.
    pub cycles: BTreeMap<String, f64>,
    /// `runhook_plugin_calls_total` by outcome.
    pub plugin_calls: BTreeMap<String, f64>,
    /// `runhook_plugin_call_duration_seconds_bucket`, summed over plugins, by bound.
    pub plugin_buckets: Vec<(f64, f64)>,
    /// `runhook_runs_ingested_total`.
    pub runs_ingested: f64,
    /// `runhook_outbox_depth`.
    pub outbox_depth: f64,
    /// `runhook_outbox_oldest_age_seconds`.
    pub outbox_oldest_age: f64,
}

impl Totals {
    /// Reads the totals out of Prometheus's text format.
    pub fn parse(text: &str) -> Self {
        let mut t = Totals::default();
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| {
                labels.split(',').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            let by = |map: &mut BTreeMap<String, f64>, key: &str| {
                *map.entry(label(key).unwrap_or_default()).or_default() += value;
            };
            match name {
                "runhook_deliveries_total" => by(&mut t.deliveries, "outcome"),
                "runhook_rule_cycles_total" => by(&mut t.cycles, "outcome"),
                "runhook_plugin_calls_total" => by(&mut t.plugin_calls, "outcome"),
                "runhook_runs_ingested_total" => t.runs_ingested += value,
                "runhook_outbox_depth" => t.outbox_depth = value,
                "runhook_outbox_oldest_age_seconds" => t.outbox_oldest_age = value,
                "runhook_plugin_call_duration_seconds_bucket" => {
                    let le = label("le").map_or(f64::INFINITY, |l| l.parse().unwrap_or(f64::INFINITY));
                    buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += value;
                }
                _ => {}
            }
        }
        t.plugin_buckets = buckets.into_values().collect();
        t.plugin_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        t
    }
}

/// The samples of the last hour, oldest first.
#[derive(Debug, Default)]
pub struct HealthHistory {
    samples: Mutex<VecDeque<(Timestamp, Totals)>>,
}

impl HealthHistory {
    fn push(&self, at: Timestamp, totals: Totals) {
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.push_back((at, totals));
        while samples.len() > KEEP {
            samples.pop_front();
        }
    }

    fn snapshot(&self) -> Vec<(Timestamp, Totals)> {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}

/// Reads the outbox gauges from the store, then renders the registry.
/// `None` when the process has no metrics recorder.
pub(super) async fn render(state: &AppState) -> Option<String> {
    let handle = state.metrics.as_ref()?;
    match state.store.outbox_stats().await {
        Ok((depth, oldest)) => {
            metrics::gauge!("runhook_outbox_depth").set(depth as f64);
            let age = oldest.map_or(0.0, |t| t.seconds_until(&Timestamp::now()).max(0.0));
            metrics::gauge!("runhook_outbox_oldest_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read outbox stats for the metrics"),
    }
    match state.store.horizon_lag().await {
        Ok(lag) => metrics::gauge!("runhook_change_horizon_lag_seconds").set(lag.as_secs_f64()),
        Err(e) => tracing::warn!(error = %e, "cannot read the change horizon's lag for the metrics"),
    }
    Some(handle.render())
}

/// Samples the totals every [`SAMPLE_EVERY`] until `stop`.
pub async fn sample_loop(state: AppState, stop: CancellationToken) {
    loop {
        if let Some(text) = render(&state).await {
            state.health.push(Timestamp::now(), Totals::parse(&text));
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

/// The bound below which `q` of the calls counted in the bucket
/// differences fell (the histogram's resolution), or `None` without calls.
fn quantile(first: &[(f64, f64)], last: &[(f64, f64)], q: f64) -> Option<f64> {
    let before: BTreeMap<u64, f64> = first.iter().map(|(le, n)| (le.to_bits(), *n)).collect();
    let deltas: Vec<(f64, f64)> =
        last.iter().map(|(le, n)| (*le, n - before.get(&le.to_bits()).copied().unwrap_or(0.0))).collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas.iter().find(|(_, n)| *n >= q * total).map(|(le, _)| *le)
}

fn diff(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    b.iter().map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)).max(0.0))).collect()
}

/// `GET /health/series`.
pub(super) async fn series(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut samples = state.health.snapshot();
    let Some(text) = render(&state).await else {
        return Err(ApiError::NotFound("metrics are not enabled in this process".into()));
    };
    let now = (Timestamp::now(), Totals::parse(&text));
    samples.push(now.clone());
    let points: Vec<Value> = samples
        .windows(2)
        .map(|w| {
            let ((_, a), (at, b)) = (&w[0], &w[1]);
            json!({
                "at": at.to_offset_string(),
                "deliveries": diff(&a.deliveries, &b.deliveries),
                "cycle_failures": (b.cycles.get("error").copied().unwrap_or(0.0) - a.cycles.get("error").copied().unwrap_or(0.0)).max(0.0),
                "plugin_calls": diff(&a.plugin_calls, &b.plugin_calls),
                "runs_ingested": (b.runs_ingested - a.runs_ingested).max(0.0),
                "outbox_depth": b.outbox_depth,
                "outbox_oldest_age_seconds": b.outbox_oldest_age,
            })
        })
        .collect();
    let (since, first) = samples.first().cloned().unwrap_or_else(|| now.clone());
    let (_, last) = &now;
    Ok(Json(json!({
        "sample_seconds": SAMPLE_EVERY.as_secs(),
        "since": since.to_offset_string(),
        "points": points,
        "outbox": {"depth": last.outbox_depth, "oldest_age_seconds": last.outbox_oldest_age},
        "totals": {
            "deliveries": diff(&first.deliveries, &last.deliveries),
            "cycles": diff(&first.cycles, &last.cycles),
            "plugin_calls": diff(&first.plugin_calls, &last.plugin_calls),
            "runs_ingested": (last.runs_ingested - first.runs_ingested).max(0.0),
        },
        "plugin_p99": p99_json(quantile(&first.plugin_buckets, &last.plugin_buckets, 0.99), &last.plugin_buckets),
    })))
}

/// The p99 as `{"seconds": bound}`, or `{"over_seconds": highest bound}`
/// when it fell past the histogram's highest bound; null without calls.
fn p99_json(p99: Option<f64>, buckets: &[(f64, f64)]) -> Value {
    match p99 {
        None => Value::Null,
        Some(s) if s.is_finite() => json!({"seconds": s}),
        Some(_) => json!({"over_seconds": buckets.iter().rev().find(|(le, _)| le.is_finite()).map(|(le, _)| *le)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE runhook_deliveries_total counter
runhook_deliveries_total{outcome="delivered"} 7
runhook_deliveries_total{outcome="failed"} 2
runhook_rule_cycles_total{rule="a",outcome="ok"} 5
runhook_rule_cycles_total{rule="b",outcome="error"} 1
runhook_rule_cycles_total{rule="a",outcome="error"} 2
runhook_plugin_call_duration_seconds_bucket{plugin="p",capability="match",le="0.001"} 90
runhook_plugin_call_duration_seconds_bucket{plugin="p",capability="match",le="0.01"} 99
runhook_plugin_call_duration_seconds_bucket{plugin="p",capability="match",le="+Inf"} 100
runhook_plugin_call_duration_seconds_bucket{plugin="q",capability="match",le="0.001"} 0
runhook_plugin_call_duration_seconds_bucket{plugin="q",capability="match",le="0.01"} 0
runhook_plugin_call_duration_seconds_bucket{plugin="q",capability="match",le="+Inf"} 100
runhook_outbox_depth 3
runhook_runs_ingested_total 42
"#;

    #[test]
    fn totals_are_read_from_prometheus_text() {
        let t = Totals::parse(TEXT);
        assert_eq!(t.deliveries["delivered"], 7.0);
        assert_eq!(t.cycles["error"], 3.0);
        assert_eq!((t.outbox_depth, t.runs_ingested), (3.0, 42.0));
        assert_eq!(t.plugin_buckets, vec![(0.001, 90.0), (0.01, 99.0), (f64::INFINITY, 200.0)]);
    }

    #[test]
    fn the_quantile_comes_from_bucket_differences() {
        let last = Totals::parse(TEXT).plugin_buckets;
        assert_eq!(quantile(&[], &last, 0.4), Some(0.001));
        assert_eq!(quantile(&[], &last, 0.99), Some(f64::INFINITY));
        assert_eq!(quantile(&last, &last, 0.99), None, "no calls in between");
        let first = vec![(0.001, 90.0), (0.01, 99.0), (f64::INFINITY, 200.0)];
        // 100 calls in between: 90 under 1 ms, 10 more under 10 ms.
        let later = vec![(0.001, 180.0), (0.01, 199.0), (f64::INFINITY, 300.0)];
        assert_eq!(quantile(&first, &later, 0.9), Some(0.001));
        assert_eq!(quantile(&first, &later, 0.99), Some(0.01));
    }
}
