//! How a speed-to-lead clock reads at a given time.

use chrono::Duration;

use super::facts::SlaClock;
use super::names::named_enum;
use super::policy::Rules;
use super::values::Timestamp;

named_enum! {
    prefix = "SLA_STATE_",
    /// Where a speed-to-lead clock stands.
    pub enum SlaState {
        NotStarted => "NOT_STARTED",
        OnTrack => "ON_TRACK",
        AtRisk => "AT_RISK",
        Breached => "BREACHED",
        Met => "MET",
    }
}

/// The state of a clock at `now`. A breach counts once the due time passes without a recorded
/// touch, even before the sweeper records it, so every reader sees the same answer.
pub fn state_at(clock: Option<&SlaClock>, rules: &Rules, now: Timestamp) -> SlaState {
    let Some(clock) = clock else {
        return SlaState::NotStarted;
    };
    if clock.breached_at.is_some() {
        return SlaState::Breached;
    }
    match clock.first_touch_at {
        Some(touch) if touch <= clock.due_at => SlaState::Met,
        Some(_) => SlaState::Breached,
        None if now > clock.due_at => SlaState::Breached,
        None => {
            let target = (clock.due_at - clock.started_at).num_milliseconds() as f64;
            let at_risk =
                clock.started_at + Duration::milliseconds((target * rules.sla.at_risk_ratio) as i64);
            if now >= at_risk {
                SlaState::AtRisk
            } else {
                SlaState::OnTrack
            }
        }
    }
}

/// From the clock start to the first touch, when there was one.
pub fn time_to_first_touch(clock: &SlaClock) -> Option<Duration> {
    clock
        .first_touch_at
        .map(|t| (t - clock.started_at).max(Duration::zero()))
}
