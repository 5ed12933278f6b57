//! Fit and engagement scores. Scoring works on numbers only; [`explain_fit`] and
//! [`explain_engagement`] turn the same computation into lines for people.

use super::facts::{EngagementEvent, Points, Scores};
use super::policy::{FitField, FitRule, KindRule, Matcher, Rules};
use super::values::{EngagementKind, FitGrade, Profile, Timestamp};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// One contribution to a score, with where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreLine {
    pub rule_id: String,
    pub input: String,
    pub points: Points,
    pub reason: String,
}

fn field_value(profile: &Profile, field: FitField) -> Option<String> {
    let c = &profile.contact;
    let co = &profile.company;
    match field {
        FitField::Industry => co.industry.as_ref().map(|v| v.as_str().to_owned()),
        FitField::EmployeeCount => co.employee_count.map(|n| n.to_string()),
        FitField::Country => co.country.as_ref().map(|v| v.as_str().to_owned()),
        FitField::Seniority => c.seniority.map(|s| s.as_str().to_owned()),
        FitField::JobFunction => c.job_function.as_ref().map(|v| v.as_str().to_owned()),
        FitField::EmailDomain => Some(c.email.domain().to_owned()),
        FitField::CompanyDomain => Some(profile.company_domain().to_owned()),
    }
}

fn matches(rule: &FitRule, profile: &Profile) -> bool {
    match &rule.matcher {
        Matcher::Known(known) => field_value(profile, rule.field).is_some() == *known,
        Matcher::Range { min, max } => profile
            .company
            .employee_count
            .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
        Matcher::AnyOf(values) => match rule.field {
            FitField::Industry => profile
                .company
                .industry
                .as_ref()
                .is_some_and(|v| values.contains(v.as_str())),
            FitField::Country => profile
                .company
                .country
                .as_ref()
                .is_some_and(|v| values.contains(v.as_str())),
            FitField::Seniority => profile
                .contact
                .seniority
                .is_some_and(|v| values.contains(v.as_str())),
            FitField::JobFunction => profile
                .contact
                .job_function
                .as_ref()
                .is_some_and(|v| values.contains(v.as_str())),
            FitField::EmailDomain => values.contains(profile.contact.email.domain()),
            FitField::CompanyDomain => values.contains(profile.company_domain()),
            FitField::EmployeeCount => false,
        },
    }
}

/// Fit points and grade.
pub fn fit(profile: &Profile, rules: &Rules) -> (Points, FitGrade) {
    let mut points = Points::ZERO;
    let mut ceiling = FitGrade::A;
    for rule in rules.fit.rules.iter().filter(|r| matches(r, profile)) {
        points = points + rule.points;
        if let Some(max) = rule.max_grade {
            ceiling = ceiling.max(max);
        }
    }
    let f = &rules.fit;
    let by_points = if points >= f.grade_a {
        FitGrade::A
    } else if points >= f.grade_b {
        FitGrade::B
    } else if points >= f.grade_c {
        FitGrade::C
    } else {
        FitGrade::D
    };
    // A worse grade sorts higher (A < B < C < D).
    (points, by_points.max(ceiling))
}

/// The fit rules that matched, as lines.
pub fn explain_fit(profile: &Profile, rules: &Rules) -> Vec<ScoreLine> {
    rules
        .fit
        .rules
        .iter()
        .filter(|r| matches(r, profile))
        .map(|r| {
            let value = field_value(profile, r.field).unwrap_or_else(|| "unknown".into());
            let field = serde_json::to_value(r.field)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut reason = r.reason.clone();
            if let Some(max) = r.max_grade {
                reason = format!("{reason} (grade at best {max})");
            }
            ScoreLine {
                rule_id: r.id.clone(),
                input: format!("{field}={value}"),
                points: r.points,
                reason,
            }
        })
        .collect()
}

/// When the contact last did each kind of thing: what lifts a held signal (an unsubscribe) is a
/// listed kind done after it.
pub struct LastSeen([Option<Timestamp>; EngagementKind::ALL.len()]);

impl LastSeen {
    pub fn of(events: &[EngagementEvent]) -> Self {
        let mut last = [None; EngagementKind::ALL.len()];
        for event in events {
            let seen = &mut last[event.kind as usize];
            *seen = (*seen).max(Some(event.occurred_at));
        }
        LastSeen(last)
    }

    /// The kind done after `event` that lifts it under `rule`, if any.
    fn lifter(&self, event: &EngagementEvent, rule: &KindRule) -> Option<EngagementKind> {
        rule.lifted_by
            .iter()
            .find(|kind| self.0[*kind as usize].is_some_and(|at| at > event.occurred_at))
    }
}

/// The points an event is worth at `now`, after decay; `None` once it no longer counts.
fn event_points(
    event: &EngagementEvent,
    rules: &Rules,
    last_seen: &LastSeen,
    now: Timestamp,
) -> Option<Points> {
    let e = &rules.engagement;
    let kind = e.kinds.get(&event.kind)?;
    if kind.is_held() {
        return last_seen.lifter(event, kind).is_none().then_some(kind.points);
    }
    let age_seconds = (now - event.occurred_at).num_seconds().max(0) as f64;
    if age_seconds > f64::from(e.max_age_days) * SECONDS_PER_DAY {
        return None;
    }
    if !kind.decays {
        return Some(kind.points);
    }
    let half_lives = age_seconds / (f64::from(e.half_life_days) * SECONDS_PER_DAY);
    Some(Points(
        (kind.points.0 as f64 * 0.5f64.powf(half_lives)).round() as i64
    ))
}

/// Whether an event can never count again under these rules: older than `max_age_days`, or, for
/// a kind held until lifted, lifted by something the contact did after it (whatever its age).
pub fn expired(event: &EngagementEvent, rules: &Rules, last_seen: &LastSeen, now: Timestamp) -> bool {
    match rules.engagement.kinds.get(&event.kind) {
        Some(rule) if rule.is_held() => last_seen.lifter(event, rule).is_some(),
        _ => (now - event.occurred_at).num_seconds() > i64::from(rules.engagement.max_age_days) * 86_400,
    }
}

/// Whether an event of this kind holds until a newer signal lifts it (and so is kept whatever its
/// age).
pub fn is_held(event: &EngagementEvent, rules: &Rules) -> bool {
    rules
        .engagement
        .kinds
        .get(&event.kind)
        .is_some_and(KindRule::is_held)
}

/// Engagement points: decayed event points, capped per kind.
pub fn engagement(events: &[EngagementEvent], rules: &Rules, now: Timestamp) -> Points {
    let last_seen = LastSeen::of(events);
    // Per-kind sums in a small fixed array: no allocation on the hot path.
    let mut sums = [Points::ZERO; EngagementKind::ALL.len()];
    for event in events {
        if let Some(points) = event_points(event, rules, &last_seen, now) {
            sums[event.kind as usize] = sums[event.kind as usize] + points;
        }
    }
    EngagementKind::ALL
        .iter()
        .map(|kind| {
            capped(
                sums[*kind as usize],
                rules.engagement.kinds.get(kind).map(|k| k.cap),
            )
        })
        .sum()
}

fn capped(sum: Points, cap: Option<Points>) -> Points {
    match cap {
        Some(cap) if cap.0 >= 0 => sum.min(cap),
        Some(cap) => sum.max(cap),
        None => sum,
    }
}

/// The engagement computation as lines: one per counted event, one per cap applied.
pub fn explain_engagement(events: &[EngagementEvent], rules: &Rules, now: Timestamp) -> Vec<ScoreLine> {
    let last_seen = LastSeen::of(events);
    let mut lines = Vec::new();
    for kind in EngagementKind::ALL {
        let mut sum = Points::ZERO;
        for event in events.iter().filter(|e| e.kind == *kind) {
            let Some(points) = event_points(event, rules, &last_seen, now) else {
                continue;
            };
            sum = sum + points;
            let age_days = (now - event.occurred_at).num_seconds().max(0) as f64 / SECONDS_PER_DAY;
            let subject = if event.subject.is_empty() {
                String::new()
            } else {
                format!(" ({})", event.subject)
            };
            lines.push(ScoreLine {
                rule_id: format!("engagement.{kind}"),
                input: format!(
                    "{kind}{subject} at {}",
                    event
                        .occurred_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                points,
                reason: engagement_reason(*kind, &rules.engagement.kinds[kind], age_days),
            });
        }
        let cap = rules.engagement.kinds.get(kind).map(|k| k.cap);
        let kept = capped(sum, cap);
        if kept != sum {
            lines.push(ScoreLine {
                rule_id: format!("engagement.{kind}.cap"),
                input: format!("{kind} total {sum}"),
                points: kept - sum,
                reason: format!("{kind} counts for at most {} points", cap.unwrap_or_default()),
            });
        }
    }
    lines
}

fn engagement_reason(kind: EngagementKind, rule: &KindRule, age_days: f64) -> String {
    if !rule.is_held() {
        return format!("{kind} is worth {} points, {age_days:.1} days old", rule.points);
    }
    let lifters: Vec<_> = rule.lifted_by.iter().map(EngagementKind::as_str).collect();
    format!(
        "{kind} is worth {} points, {age_days:.1} days old; it holds until a later {}",
        rule.points,
        lifters.join(" or ")
    )
}

/// All scores at `now`.
pub fn score(profile: &Profile, events: &[EngagementEvent], rules: &Rules, now: Timestamp) -> Scores {
    let (fit, grade) = fit(profile, rules);
    let engagement = engagement(events, rules, now);
    Scores {
        fit,
        grade,
        engagement,
        combined: fit + engagement,
        threshold: rules.marketing_qualified,
        evaluated_at: now,
    }
}
