//! An alert's state from one evaluation to the next, and the notification
//! each evaluation makes, if any: a pure function of the definition, the
//! stored state, the metric's value and the time, so a test drives it
//! with any clock and a restart changes nothing.
//!
//! Levels are ok < warning < critical. An evaluation whose level is worse
//! than the state's notifies (`triggered`; leaving ok opens a new
//! incident). One whose level is ok while the state is bad notifies
//! `resolved` and closes the incident. One that stays bad (the same level
//! or better, but not ok) notifies `reminder` once `reminder_minutes` have
//! passed since the last notification, and otherwise nothing. Every
//! notification of an incident carries the same incident key, so PagerDuty
//! and the others deduplicate and resolve it.

use serde::{Deserialize, Serialize};

use runhook_core::model::alert::{AlertSpec, AlertState, Level, NoData};
use runhook_core::model::{AlertId, Timestamp};

/// Why a notification is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The level got worse.
    Triggered,
    /// Still bad, `reminder_minutes` after the last notification.
    Reminder,
    /// Back to ok.
    Resolved,
}

/// One notification: what a message format renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Why.
    pub event: Event,
    /// The level before this evaluation.
    pub from: Level,
    /// The level now.
    pub to: Level,
    /// The value measured (`None`: no data in the window).
    pub value: Option<f64>,
    /// The threshold the value is judged against: the crossed one, or on
    /// resolve the lowest one.
    pub threshold: Option<f64>,
    /// The same for every notification of one incident.
    pub incident_key: String,
    /// When the incident opened.
    pub incident_started: Timestamp,
}

/// The level `value` is at under `spec` (`None`: no data, read per
/// `spec.no_data`, with `current` for [`NoData::Keep`]).
pub fn level_of(spec: &AlertSpec, value: Option<f64>, current: Level) -> Level {
    let Some(v) = value else {
        return match spec.no_data {
            NoData::Ignore => Level::Ok,
            NoData::Alert => Level::Critical,
            NoData::Keep => current,
        };
    };
    let past = |t: Option<f64>| t.is_some_and(|t| spec.condition.crossed(v, t));
    if past(spec.critical) {
        Level::Critical
    } else if past(spec.warning) {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// The incident key of incident `n` of `alert`.
pub fn incident_key(alert: AlertId, n: u64) -> String {
    format!("runhook-alert-{alert}-{n}")
}

/// One evaluation of alert `id`: the state after it and its notification.
pub fn step(
    id: AlertId,
    spec: &AlertSpec,
    state: &AlertState,
    value: Option<f64>,
    now: Timestamp,
) -> (AlertState, Option<Notice>) {
    let level = level_of(spec, value, state.level);
    let mut next = AlertState { level, value, evaluated_at: Some(now), ..state.clone() };
    let threshold = |l: Level| match l {
        Level::Critical => spec.critical,
        Level::Warning => spec.warning,
        Level::Ok => spec.warning.or(spec.critical),
    };
    let event = if level > state.level {
        if state.level == Level::Ok {
            next.incident += 1;
            next.bad_since = Some(now);
        }
        Some(Event::Triggered)
    } else if level == Level::Ok && state.level != Level::Ok {
        Some(Event::Resolved)
    } else if level != Level::Ok && reminder_due(spec, state.notified_at, now) {
        Some(Event::Reminder)
    } else {
        None
    };
    let notice = event.map(|event| {
        next.notified_at = Some(now);
        Notice {
            event,
            from: state.level,
            to: level,
            value,
            threshold: threshold(level),
            incident_key: incident_key(id, next.incident),
            incident_started: next.bad_since.unwrap_or(now),
        }
    });
    if level == Level::Ok {
        next.bad_since = None;
    }
    (next, notice)
}

fn reminder_due(spec: &AlertSpec, last: Option<Timestamp>, now: Timestamp) -> bool {
    let every = chrono::Duration::minutes(i64::from(spec.reminder_minutes));
    spec.reminder_minutes > 0 && last.is_none_or(|last| now.as_datetime() - last.as_datetime() >= every)
}

#[cfg(test)]
mod tests {
    use runhook_core::model::SessionId;
    use runhook_core::model::alert::{Condition, Metric};

    use super::*;

    fn spec(no_data: NoData) -> AlertSpec {
        AlertSpec {
            display_name: "errors".into(),
            session_id: SessionId::new_v4(),
            filter: None,
            metric: Metric::ErrorRate,
            window_minutes: 5,
            condition: Condition::Above,
            warning: Some(0.1),
            critical: Some(0.5),
            no_data,
            evaluate_every_seconds: 60,
            reminder_minutes: 10,
            webhooks: vec![],
            signing_secret: None,
            is_enabled: true,
        }
    }

    fn minute(m: i64) -> Timestamp {
        Timestamp::from_datetime(chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(1_000_000 + m))
    }

    /// Runs `values` a minute apart from a fresh state; the events made.
    fn events(spec: &AlertSpec, values: &[Option<f64>]) -> Vec<(i64, Event, Level)> {
        let id = AlertId::new_v4();
        let mut state = AlertState::default();
        let mut out = Vec::new();
        for (m, v) in values.iter().enumerate() {
            let (next, notice) = step(id, spec, &state, *v, minute(m as i64));
            if let Some(n) = notice {
                assert_eq!(n.incident_key, incident_key(id, next.incident));
                out.push((m as i64, n.event, n.to));
            }
            state = next;
        }
        out
    }

    #[test]
    fn worsen_worsen_resolved_with_reminders_at_the_interval_only() {
        let s = spec(NoData::Ignore);
        let mut values = vec![Some(0.0), Some(0.2), Some(0.3), Some(0.9)];
        values.extend(std::iter::repeat_n(Some(0.9), 25)); // critical for 25 more minutes
        values.push(Some(0.05));
        let got = events(&s, &values);
        assert_eq!(
            got,
            vec![
                (1, Event::Triggered, Level::Warning),
                (3, Event::Triggered, Level::Critical),
                (13, Event::Reminder, Level::Critical),
                (23, Event::Reminder, Level::Critical),
                (29, Event::Resolved, Level::Ok),
            ]
        );
    }

    #[test]
    fn one_incident_key_from_trigger_to_resolve_and_a_new_one_after() {
        let (s, id) = (spec(NoData::Ignore), AlertId::new_v4());
        let mut state = AlertState::default();
        let mut keys = Vec::new();
        for (m, v) in [0.2, 0.9, 0.0, 0.6].into_iter().enumerate() {
            let (next, notice) = step(id, &s, &state, Some(v), minute(m as i64));
            keys.push(notice.expect("each step notifies").incident_key);
            state = next;
        }
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[1], keys[2], "the resolve closes the same incident");
        assert_ne!(keys[2], keys[3], "a new incident after the resolve");
        assert_eq!(state.bad_since, Some(minute(3)));
    }

    #[test]
    fn improving_but_still_bad_is_quiet_until_the_reminder() {
        let s = spec(NoData::Ignore);
        let got = events(&s, &[Some(0.9), Some(0.2), Some(0.2)]);
        assert_eq!(got, vec![(0, Event::Triggered, Level::Critical)]);
    }

    #[test]
    fn no_data_in_each_mode() {
        let gap = [Some(0.9), None, None];
        assert_eq!(
            events(&spec(NoData::Ignore), &gap),
            vec![(0, Event::Triggered, Level::Critical), (1, Event::Resolved, Level::Ok)]
        );
        assert_eq!(events(&spec(NoData::Keep), &gap), vec![(0, Event::Triggered, Level::Critical)]);
        assert_eq!(
            events(&spec(NoData::Alert), &[Some(0.0), None, None]),
            vec![(1, Event::Triggered, Level::Critical)]
        );
    }

    #[test]
    fn below_and_a_single_threshold() {
        let s = AlertSpec { condition: Condition::Below, warning: None, critical: Some(10.0), ..spec(NoData::Ignore) };
        assert_eq!(level_of(&s, Some(9.0), Level::Ok), Level::Critical);
        assert_eq!(level_of(&s, Some(10.0), Level::Ok), Level::Ok, "at the threshold is not past it");
        let (_, n) = step(
            AlertId::new_v4(),
            &s,
            &AlertState { level: Level::Critical, ..Default::default() },
            Some(12.0),
            minute(0),
        );
        assert_eq!(n.map(|n| (n.event, n.threshold)), Some((Event::Resolved, Some(10.0))));
    }

    #[test]
    fn a_restart_resumes_from_the_stored_state_and_repeats_nothing() {
        let (s, id) = (spec(NoData::Ignore), AlertId::new_v4());
        let (state, first) = step(id, &s, &AlertState::default(), Some(0.9), minute(0));
        assert!(first.is_some());
        let stored: AlertState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(stored, state);
        let (_, again) = step(id, &s, &stored, Some(0.9), minute(1));
        assert_eq!(again, None, "the same level after a restart notifies nothing");
    }
}
