//! The funnel of a period, computed from the audit entries recorded in it: leads entering each
//! stage, conversion between stages, speed to lead, SLA breaches, disqualification reasons.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;

use super::audit::{AuditEntry, AuditKind};
use super::facts::SlaClock;
use super::lifecycle::LeadState;
use super::values::{DisqualificationReason, LeadId, SourceChannel, Timestamp};

/// The stage pairs whose conversion is reported.
pub const CONVERSIONS: &[(LeadState, LeadState)] = &[
    (LeadState::Lead, LeadState::MarketingQualified),
    (LeadState::MarketingQualified, LeadState::SalesQualified),
    (LeadState::SalesQualified, LeadState::Converted),
    (LeadState::Lead, LeadState::SalesQualified),
];

/// The conversion from one stage to a later one, for a cohort.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversion {
    pub from: LeadState,
    pub to: LeadState,
    /// Leads that entered `from` in the period.
    pub from_leads: i64,
    /// Of those, leads that entered `to` afterwards, by the end of the period.
    pub to_leads: i64,
    pub rate: f64,
}

/// The funnel of one channel, or of all (`channel` is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelFunnel {
    pub channel: Option<SourceChannel>,
    pub leads_created: i64,
    pub stages: BTreeMap<LeadState, i64>,
    pub conversions: Vec<Conversion>,
    pub first_touches: i64,
    pub time_to_first_touch_p50: Option<Duration>,
    pub time_to_first_touch_p90: Option<Duration>,
    pub sla_started: i64,
    pub sla_breached: i64,
    pub sla_breach_rate: f64,
    pub disqualifications: BTreeMap<DisqualificationReason, i64>,
}

/// What the funnel reads of an entry of a lead: its columns, and two facts of its body. The log
/// keeps the body's facts as columns too (see `store`), so a report need not parse bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFacts {
    pub lead: LeadId,
    pub kind: AuditKind,
    pub recorded_at: Timestamp,
    pub state_before: Option<LeadState>,
    pub state_after: Option<LeadState>,
    pub source_channel: Option<SourceChannel>,
    /// The speed-to-lead clock after the change.
    pub sla: Option<SlaFacts>,
    /// Why the lead is disqualified, when it is after the change.
    pub disqualification: Option<DisqualificationReason>,
}

/// What the funnel reads of an entry's SLA clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlaFacts {
    pub number: u32,
    pub started_at: Timestamp,
    pub first_touch_at: Option<Timestamp>,
    pub breached: bool,
}

impl SlaFacts {
    pub fn of(clock: &SlaClock) -> Self {
        Self {
            number: clock.number,
            started_at: clock.started_at,
            first_touch_at: clock.first_touch_at,
            breached: clock.breached_at.is_some(),
        }
    }
}

impl EntryFacts {
    /// The facts of an entry of a lead (`None` for entries of no lead), its body parsed as
    /// [`AuditEntry::parsed_body`] parses it.
    pub fn of(entry: &AuditEntry) -> Option<Self> {
        let lead = entry.lead?;
        let body = entry.parsed_body();
        Some(Self {
            lead,
            kind: entry.kind,
            recorded_at: entry.recorded_at,
            state_before: entry.state_before,
            state_after: entry.state_after,
            source_channel: entry.source_channel,
            sla: body.sla.as_ref().map(SlaFacts::of),
            disqualification: body.disqualification,
        })
    }
}

#[derive(Default)]
struct Clock {
    first_started_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    first_touch_at: Option<Timestamp>,
    breached: bool,
}

struct Track {
    channel: Option<SourceChannel>,
    created: bool,
    /// The order in which states were first entered in the period.
    entered: Vec<LeadState>,
    clocks: BTreeMap<u32, Clock>,
    disqualifications: Vec<DisqualificationReason>,
}

/// Collects a period's entries (any order of leads, each lead's entries in position order).
pub struct FunnelBuilder {
    start: Timestamp,
    end: Timestamp,
    tracks: HashMap<LeadId, Track>,
}

impl FunnelBuilder {
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        Self {
            start,
            end,
            tracks: HashMap::new(),
        }
    }

    /// Adds an entry, reading its facts from its body.
    pub fn add(&mut self, entry: &AuditEntry) {
        if let Some(facts) = EntryFacts::of(entry) {
            self.add_facts(&facts);
        }
    }

    /// Adds what the funnel reads of one entry.
    pub fn add_facts(&mut self, entry: &EntryFacts) {
        if entry.recorded_at < self.start || entry.recorded_at >= self.end {
            return;
        }
        let track = self.tracks.entry(entry.lead).or_insert_with(|| Track {
            channel: entry.source_channel,
            created: false,
            entered: Vec::new(),
            clocks: BTreeMap::new(),
            disqualifications: Vec::new(),
        });
        let mut enter = |state: LeadState| {
            if !track.entered.contains(&state) {
                track.entered.push(state);
            }
        };
        if entry.kind == AuditKind::LeadSubmitted {
            track.created = true;
            enter(LeadState::Lead);
        }
        let entered = entry
            .state_after
            .filter(|after| entry.state_before != Some(*after));
        if let Some(state) = entered {
            enter(state);
        }
        if entered == Some(LeadState::Disqualified) {
            track
                .disqualifications
                .push(entry.disqualification.unwrap_or(DisqualificationReason::Other));
        }
        if let Some(sla) = &entry.sla {
            let clock = track.clocks.entry(sla.number).or_default();
            clock.first_started_at.get_or_insert(sla.started_at);
            clock.started_at = Some(sla.started_at);
            clock.first_touch_at = clock.first_touch_at.or(sla.first_touch_at);
            clock.breached |= sla.breached;
        }
    }

    /// The funnel per channel (channels with activity only) and in total.
    pub fn finish(self) -> (Vec<ChannelFunnel>, ChannelFunnel) {
        let mut per_channel: BTreeMap<SourceChannel, Acc> = BTreeMap::new();
        let mut total = Acc::default();
        for track in self.tracks.values() {
            if let Some(channel) = track.channel {
                per_channel
                    .entry(channel)
                    .or_default()
                    .add(track, self.start, self.end);
            }
            total.add(track, self.start, self.end);
        }
        let channels = per_channel
            .into_iter()
            .map(|(c, acc)| acc.report(Some(c)))
            .collect();
        (channels, total.report(None))
    }
}

#[derive(Default)]
struct Acc {
    created: i64,
    stages: BTreeMap<LeadState, i64>,
    conversions: BTreeMap<(LeadState, LeadState), (i64, i64)>,
    touches: Vec<Duration>,
    sla_started: i64,
    sla_breached: i64,
    disqualifications: BTreeMap<DisqualificationReason, i64>,
}

impl Acc {
    fn add(&mut self, track: &Track, start: Timestamp, end: Timestamp) {
        self.created += i64::from(track.created);
        for state in &track.entered {
            *self.stages.entry(*state).or_default() += 1;
        }
        let position = |s: LeadState| track.entered.iter().position(|e| *e == s);
        for (from, to) in CONVERSIONS {
            if let Some(f) = position(*from) {
                let counts = self.conversions.entry((*from, *to)).or_default();
                counts.0 += 1;
                counts.1 += i64::from(position(*to).is_some_and(|t| t > f));
            }
        }
        let in_period = |t: Option<Timestamp>| t.is_some_and(|t| t >= start && t < end);
        for clock in track.clocks.values() {
            if in_period(clock.first_started_at) {
                self.sla_started += 1;
                self.sla_breached += i64::from(clock.breached);
            }
            if let (true, Some(touch), Some(started)) = (
                in_period(clock.first_touch_at),
                clock.first_touch_at,
                clock.started_at,
            ) {
                self.touches.push((touch - started).max(Duration::zero()));
            }
        }
        for reason in &track.disqualifications {
            *self.disqualifications.entry(*reason).or_default() += 1;
        }
    }

    fn report(mut self, channel: Option<SourceChannel>) -> ChannelFunnel {
        self.touches.sort();
        let rate = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        ChannelFunnel {
            channel,
            leads_created: self.created,
            conversions: CONVERSIONS
                .iter()
                .map(|(from, to)| {
                    let (from_leads, to_leads) =
                        self.conversions.get(&(*from, *to)).copied().unwrap_or_default();
                    Conversion {
                        from: *from,
                        to: *to,
                        from_leads,
                        to_leads,
                        rate: rate(to_leads, from_leads),
                    }
                })
                .collect(),
            stages: self.stages,
            first_touches: self.touches.len() as i64,
            time_to_first_touch_p50: percentile(&self.touches, 50),
            time_to_first_touch_p90: percentile(&self.touches, 90),
            sla_breach_rate: rate(self.sla_breached, self.sla_started),
            sla_started: self.sla_started,
            sla_breached: self.sla_breached,
            disqualifications: self.disqualifications,
        }
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<_> = (1..=10).map(Duration::minutes).collect();
        assert_eq!(percentile(&values, 50), Some(Duration::minutes(5)));
        assert_eq!(percentile(&values, 90), Some(Duration::minutes(9)));
        assert_eq!(percentile(&values[..1], 90), Some(Duration::minutes(1)));
        assert_eq!(percentile(&[], 50), None);
    }
}
