//! The funnel of a period, computed from the audit entries recorded in it: leads entering each
//! stage, conversion between stages, speed to lead, SLA breaches, disqualification reasons.
//!
//! A lead merged into another (its `LEAD_MERGED_INTO` entry recorded by the end of the period)
//! is the same person as the lead it was merged into: it counts in no lead count of the period
//! (created, stages, conversions). Its clocks, first touches and disqualifications happened and
//! still count. A period that ended before the merge counts both, as they were then.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use smallvec::SmallVec;

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

#[derive(Clone, Copy)]
struct Clock {
    number: u32,
    first_started_at: Timestamp,
    started_at: Timestamp,
    first_touch_at: Option<Timestamp>,
    breached: bool,
}

/// The states a lead can enter, one slot each (a state's index in [`LeadState::ALL`]).
const STATES: usize = LeadState::ALL.len();

struct Track {
    channel: Option<SourceChannel>,
    created: bool,
    /// Merged into another lead in the period: no lead count counts it.
    merged: bool,
    /// For each state, the order in which it was first entered in the period (1 = first), or 0.
    entered: [u8; STATES],
    entered_count: u8,
    /// One per clock number seen: a lead seldom has more than one, kept in place.
    clocks: SmallVec<[Clock; 1]>,
    disqualifications: Vec<DisqualificationReason>,
}

impl Track {
    fn enter(&mut self, state: LeadState) {
        let slot = &mut self.entered[state as usize];
        if *slot == 0 {
            self.entered_count += 1;
            *slot = self.entered_count;
        }
    }

    /// When `state` was first entered, as an order (1 = first).
    fn entered(&self, state: LeadState) -> Option<u8> {
        Some(self.entered[state as usize]).filter(|order| *order > 0)
    }
}

impl EntryFacts {
    /// The state the entry moved its lead into, if any.
    fn entered(&self) -> Option<LeadState> {
        self.state_after.filter(|after| self.state_before != Some(*after))
    }

    /// Whether the entry can change a funnel: a submission, a state entered, an SLA clock, or a
    /// merge into another lead. The store leaves out the others when it reads a period (see
    /// `store::sql::select_funnel_sql`).
    pub fn counts(&self) -> bool {
        matches!(self.kind, AuditKind::LeadSubmitted | AuditKind::LeadMergedInto)
            || self.entered().is_some()
            || self.sla.is_some()
    }
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

    /// Adds what the funnel reads of one entry. Entries that do not [count](EntryFacts::counts)
    /// change nothing, not even the channel a lead is reported under.
    pub fn add_facts(&mut self, entry: &EntryFacts) {
        if entry.recorded_at < self.start || entry.recorded_at >= self.end || !entry.counts() {
            return;
        }
        let track = self.tracks.entry(entry.lead).or_insert_with(|| Track {
            channel: entry.source_channel,
            created: false,
            merged: false,
            entered: [0; STATES],
            entered_count: 0,
            clocks: SmallVec::new(),
            disqualifications: Vec::new(),
        });
        if entry.kind == AuditKind::LeadSubmitted {
            track.created = true;
            track.enter(LeadState::Lead);
        }
        track.merged |= entry.kind == AuditKind::LeadMergedInto;
        let entered = entry.entered();
        if let Some(state) = entered {
            track.enter(state);
        }
        if entered == Some(LeadState::Disqualified) {
            track
                .disqualifications
                .push(entry.disqualification.unwrap_or(DisqualificationReason::Other));
        }
        if let Some(sla) = &entry.sla {
            match track.clocks.iter_mut().find(|c| c.number == sla.number) {
                Some(clock) => {
                    clock.started_at = sla.started_at;
                    clock.first_touch_at = clock.first_touch_at.or(sla.first_touch_at);
                    clock.breached |= sla.breached;
                }
                None => track.clocks.push(Clock {
                    number: sla.number,
                    first_started_at: sla.started_at,
                    started_at: sla.started_at,
                    first_touch_at: sla.first_touch_at,
                    breached: sla.breached,
                }),
            }
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

/// Counts per state, conversion pair and reason, in slots (maps only in the report).
#[derive(Default)]
struct Acc {
    created: i64,
    stages: [i64; STATES],
    /// Per pair of [`CONVERSIONS`]: leads that entered `from`, and of those, `to` afterwards.
    conversions: [(i64, i64); CONVERSIONS.len()],
    touches: Vec<Duration>,
    sla_started: i64,
    sla_breached: i64,
    disqualifications: BTreeMap<DisqualificationReason, i64>,
}

impl Acc {
    fn add(&mut self, track: &Track, start: Timestamp, end: Timestamp) {
        if !track.merged {
            self.created += i64::from(track.created);
            for (count, order) in self.stages.iter_mut().zip(track.entered) {
                *count += i64::from(order > 0);
            }
            for (counts, (from, to)) in self.conversions.iter_mut().zip(CONVERSIONS) {
                if let Some(f) = track.entered(*from) {
                    counts.0 += 1;
                    counts.1 += i64::from(track.entered(*to).is_some_and(|t| t > f));
                }
            }
        }
        let in_period = |t: Timestamp| t >= start && t < end;
        for clock in &track.clocks {
            if in_period(clock.first_started_at) {
                self.sla_started += 1;
                self.sla_breached += i64::from(clock.breached);
            }
            if let Some(touch) = clock.first_touch_at.filter(|t| in_period(*t)) {
                self.touches
                    .push((touch - clock.started_at).max(Duration::zero()));
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
                .zip(self.conversions)
                .map(|((from, to), (from_leads, to_leads))| Conversion {
                    from: *from,
                    to: *to,
                    from_leads,
                    to_leads,
                    rate: rate(to_leads, from_leads),
                })
                .collect(),
            stages: LeadState::ALL
                .iter()
                .zip(self.stages)
                .filter(|(_, count)| *count > 0)
                .map(|(state, count)| (*state, count))
                .collect(),
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
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    /// The funnel as first written: per lead, the states in the order first entered, a map of
    /// clocks by number, and maps of counts. The builder keeps the same facts in compact form.
    fn reference(
        entries: &[EntryFacts],
        start: Timestamp,
        end: Timestamp,
    ) -> (Vec<ChannelFunnel>, ChannelFunnel) {
        #[derive(Default)]
        struct Lead {
            channel: Option<SourceChannel>,
            created: bool,
            merged: bool,
            entered: Vec<LeadState>,
            clocks: BTreeMap<u32, (Timestamp, Timestamp, Option<Timestamp>, bool)>,
            disqualifications: Vec<DisqualificationReason>,
        }
        let mut leads: Vec<(LeadId, Lead)> = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.recorded_at >= start && e.recorded_at < end && e.counts())
        {
            let at = match leads.iter().position(|(id, _)| *id == e.lead) {
                Some(at) => at,
                None => {
                    let lead = Lead {
                        channel: e.source_channel,
                        ..Lead::default()
                    };
                    leads.push((e.lead, lead));
                    leads.len() - 1
                }
            };
            let lead = &mut leads[at].1;
            let mut enter = |s: LeadState| {
                if !lead.entered.contains(&s) {
                    lead.entered.push(s);
                }
            };
            if e.kind == AuditKind::LeadSubmitted {
                lead.created = true;
                enter(LeadState::Lead);
            }
            if e.kind == AuditKind::LeadMergedInto {
                lead.merged = true;
            }
            let entered = e.state_after.filter(|a| e.state_before != Some(*a));
            if let Some(s) = entered {
                enter(s);
            }
            if entered == Some(LeadState::Disqualified) {
                lead.disqualifications
                    .push(e.disqualification.unwrap_or(DisqualificationReason::Other));
            }
            if let Some(sla) = e.sla {
                let clock =
                    lead.clocks
                        .entry(sla.number)
                        .or_insert((sla.started_at, sla.started_at, None, false));
                clock.1 = sla.started_at;
                clock.2 = clock.2.or(sla.first_touch_at);
                clock.3 |= sla.breached;
            }
        }
        let report = |channel: Option<SourceChannel>| {
            let mut funnel = ChannelFunnel {
                channel,
                leads_created: 0,
                stages: BTreeMap::new(),
                conversions: Vec::new(),
                first_touches: 0,
                time_to_first_touch_p50: None,
                time_to_first_touch_p90: None,
                sla_started: 0,
                sla_breached: 0,
                sla_breach_rate: 0.0,
                disqualifications: BTreeMap::new(),
            };
            let mut touches = Vec::new();
            let chosen = leads
                .iter()
                .filter(|(_, l)| channel.is_none() || l.channel == channel);
            let chosen: Vec<&Lead> = chosen.map(|(_, l)| l).collect();
            for lead in &chosen {
                if !lead.merged {
                    funnel.leads_created += i64::from(lead.created);
                    for s in &lead.entered {
                        *funnel.stages.entry(*s).or_default() += 1;
                    }
                }
                for (started, last_started, touch, breached) in lead.clocks.values() {
                    if *started >= start && *started < end {
                        funnel.sla_started += 1;
                        funnel.sla_breached += i64::from(*breached);
                    }
                    if let Some(touch) = touch.filter(|t| *t >= start && *t < end) {
                        touches.push((touch - *last_started).max(Duration::zero()));
                    }
                }
                for r in &lead.disqualifications {
                    *funnel.disqualifications.entry(*r).or_default() += 1;
                }
            }
            let rate = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
            for (from, to) in CONVERSIONS {
                let position = |l: &Lead, s: LeadState| l.entered.iter().position(|e| *e == s);
                let entered_from = chosen
                    .iter()
                    .filter(|l| !l.merged && position(l, *from).is_some());
                let from_leads = entered_from.clone().count() as i64;
                let to_leads = entered_from
                    .filter(|l| position(l, *to).is_some_and(|t| Some(t) > position(l, *from)))
                    .count() as i64;
                funnel.conversions.push(Conversion {
                    from: *from,
                    to: *to,
                    from_leads,
                    to_leads,
                    rate: rate(to_leads, from_leads),
                });
            }
            touches.sort();
            funnel.first_touches = touches.len() as i64;
            funnel.time_to_first_touch_p50 = percentile(&touches, 50);
            funnel.time_to_first_touch_p90 = percentile(&touches, 90);
            funnel.sla_breach_rate = rate(funnel.sla_breached, funnel.sla_started);
            funnel
        };
        let mut channels: Vec<SourceChannel> = leads.iter().filter_map(|(_, l)| l.channel).collect();
        channels.sort();
        channels.dedup();
        (
            channels.into_iter().map(|c| report(Some(c))).collect(),
            report(None),
        )
    }

    fn minute(m: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::minutes(m)
    }

    fn entry() -> impl Strategy<Value = EntryFacts> {
        let kinds = [
            AuditKind::LeadSubmitted,
            AuditKind::EngagementRecorded,
            AuditKind::ContactAttemptRecorded,
            AuditKind::StateOverridden,
            AuditKind::SlaBreached,
            AuditKind::NurtureRevisited,
            AuditKind::LeadMergedInto,
        ];
        let state = proptest::option::of(proptest::sample::select(LeadState::ALL));
        let sla = proptest::option::of((1u32..3, 0i64..40, proptest::option::of(0i64..60), any::<bool>()));
        (
            0u128..6,
            proptest::sample::select(kinds.to_vec()),
            -10i64..70,
            state.clone(),
            state,
            proptest::sample::select(vec![SourceChannel::Website, SourceChannel::Email]),
            sla,
            proptest::option::of(proptest::sample::select(DisqualificationReason::ALL)),
        )
            .prop_map(
                |(lead, kind, at, before, after, channel, sla, disqualification)| EntryFacts {
                    lead: LeadId::from_uuid(Uuid::from_u128(lead + 1)),
                    kind,
                    recorded_at: minute(at),
                    state_before: before,
                    state_after: after,
                    // A lead's channel is its own; entries of leads 0-2 come from the website.
                    source_channel: Some(if lead < 3 { SourceChannel::Website } else { channel }),
                    sla: sla.map(|(number, started, touch, breached)| SlaFacts {
                        number,
                        started_at: minute(started),
                        first_touch_at: touch.map(minute),
                        breached,
                    }),
                    disqualification,
                },
            )
    }

    proptest! {
        #[test]
        fn the_builder_reports_what_a_plain_reading_of_the_entries_gives(
            entries in proptest::collection::vec(entry(), 0..60)
        ) {
            let (start, end) = (minute(0), minute(50));
            let mut builder = FunnelBuilder::new(start, end);
            entries.iter().for_each(|e| builder.add_facts(e));
            prop_assert_eq!(builder.finish(), reference(&entries, start, end));
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<_> = (1..=10).map(Duration::minutes).collect();
        assert_eq!(percentile(&values, 50), Some(Duration::minutes(5)));
        assert_eq!(percentile(&values, 90), Some(Duration::minutes(9)));
        assert_eq!(percentile(&values[..1], 90), Some(Duration::minutes(1)));
        assert_eq!(percentile(&[], 50), None);
    }
}
