//! The leads a growth step adds, each with its trail: made by leadgate's own engine from varied
//! profiles and channels, some carried to MQL, SQL, conversion or disqualification, with SLA
//! clocks met and breached, so that reports over them have content.

use chrono::{Duration, TimeZone, Utc};
use leadgate::domain::audit::AuditEntry;
use leadgate::domain::engine::{self, Command, Context, EventInput, OverrideRequest};
use leadgate::domain::facts::{
    AuthorityFinding, BudgetFinding, ContactAttempt, DiscoveryCall, NeedFinding, TimingFinding,
};
use leadgate::domain::lead::Lead;
use leadgate::domain::lifecycle::LeadState;
use leadgate::domain::policy::Policy;
use leadgate::domain::values::{
    Code, Company, Contact, ContactChannel, ContactOutcome, CountryCode, CriterionStatus,
    DecisionMakerInvolvement, DisqualificationReason, DomainName, Email, EngagementKind, LeadId, Profile,
    Seniority, Source, SourceChannel, Timestamp,
};

/// The year in which growth step `step` adds its leads: each step adds its leads over the year
/// after the previous step's (10k over 2023, 90k over 2024, 900k over 2025), so the trail grows
/// in time as it does in service, record times rising with positions.
pub fn year(step: usize) -> (Timestamp, Timestamp) {
    let start = Utc.with_ymd_and_hms(2023 + step as i32, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2024 + step as i32, 1, 1, 0, 0, 0).unwrap();
    (start, end)
}

/// When lead number `index` was created: step `step` adds `count` leads from number `first`,
/// evenly over its year.
pub fn created_at(index: u64, first: u64, count: u64, step: usize) -> Timestamp {
    let (start, end) = year(step);
    let span = (end - start).num_microseconds().unwrap();
    start + Duration::microseconds(span / count as i64 * (index - first) as i64)
}

/// The last quarter of step `step`'s year: the period the funnel is asked for.
pub fn last_quarter(step: usize) -> (Timestamp, Timestamp) {
    let start = Utc.with_ymd_and_hms(2023 + step as i32, 10, 1, 0, 0, 0).unwrap();
    (start, year(step).1)
}

/// A small deterministic generator (splitmix64): the same index gives the same lead.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The id of lead number `index` (a UUIDv7 of its creation time, as leadgate makes them).
pub fn lead_id(index: u64, created_at: Timestamp) -> LeadId {
    let mut rest = [0u8; 10];
    rest[2..].copy_from_slice(&index.to_be_bytes());
    let id = uuid::Builder::from_unix_timestamp_millis(created_at.timestamp_millis() as u64, &rest);
    LeadId::from_uuid(id.into_uuid())
}

/// The email of lead `index` (unique).
pub fn email(index: u64) -> String {
    format!("contact{index}@{}", company_domain(index))
}

/// The domain of lead `index`'s company, shared by every 50,000th lead.
pub fn company_domain(index: u64) -> String {
    format!("company{}.example", index % 50_000)
}

/// The external (CRM) reference of lead `index`: three leads in four have one, unique.
pub fn external_reference(index: u64) -> Option<String> {
    (index % 4 != 3).then(|| format!("crm-{index:09}"))
}

fn profile(index: u64, rng: &mut Rng) -> Profile {
    let industry = rng.pick(&[
        Some("software"),
        Some("manufacturing"),
        Some("logistics"),
        Some("retail"),
        Some("legal_services"),
        Some("education"),
        None,
    ]);
    let employees = rng.pick(&[Some(12), Some(80), Some(300), Some(2000), Some(8000), None]);
    let country = rng.pick(&[Some("FR"), Some("DE"), Some("GB"), Some("US"), Some("BR"), None]);
    let seniority = rng.pick(&[
        Some(Seniority::Executive),
        Some(Seniority::Director),
        Some(Seniority::Manager),
        None,
    ]);
    let function = rng.pick(&[
        Some("finance"),
        Some("it"),
        Some("sales"),
        Some("marketing"),
        None,
    ]);
    Profile {
        contact: Contact {
            email: Email::parse(&email(index)).unwrap(),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: "+33 1 23 45 67 89".into(),
            job_title: "Directrice".into(),
            seniority,
            job_function: function.map(|f| Code::parse(f).unwrap()),
        },
        company: Company {
            name: format!("Company {}", index % 50_000),
            // Half name their domain, the others get the email's (the same one).
            domain: index
                .is_multiple_of(2)
                .then(|| DomainName::parse(&company_domain(index)).unwrap()),
            industry: industry.map(|i| Code::parse(i).unwrap()),
            employee_count: employees,
            country: country.map(|c| CountryCode::parse(c).unwrap()),
        },
        source: Source {
            channel: rng.pick(SourceChannel::ALL),
            campaign: if index.is_multiple_of(3) {
                format!("campaign-{}", index % 40)
            } else {
                String::new()
            },
        },
        external_reference: external_reference(index).unwrap_or_default(),
    }
}

fn event(kind: EngagementKind, at: Timestamp) -> EventInput {
    EventInput {
        kind,
        occurred_at: Some(at),
        subject: String::new(),
    }
}

fn attempt(outcome: ContactOutcome, at: Timestamp) -> Command {
    Command::RecordContactAttempt(ContactAttempt {
        channel: ContactChannel::Phone,
        outcome,
        attempt_at: Some(at),
        agent: "rep-1".into(),
    })
}

fn qualifying_call() -> Command {
    let met = Some(CriterionStatus::Met);
    Command::RecordDiscoveryCall(DiscoveryCall {
        call_at: None,
        need: NeedFinding {
            status: met,
            evidence: "need".into(),
        },
        budget: BudgetFinding {
            status: met,
            ..Default::default()
        },
        authority: AuthorityFinding {
            status: met,
            decision_maker: Some(DecisionMakerInvolvement::Involved),
            evidence: String::new(),
        },
        timing: TimingFinding {
            status: met,
            ..Default::default()
        },
        conducted_by: "rep-1".into(),
    })
}

fn disqualify(rng: &mut Rng) -> Command {
    Command::Override(OverrideRequest {
        state: LeadState::Disqualified,
        reason: "sales review".into(),
        disqualification: Some(rng.pick(DisqualificationReason::ALL)),
        revisit_at: None,
    })
}

/// Lead number `index`, created at `created_at`, after everything that happened to it, and the
/// audit entries the engine recorded on the way, in order.
pub fn lead(index: u64, created_at: Timestamp, policy: &Policy) -> (Lead, Vec<AuditEntry>) {
    let mut rng = Rng::new(index);
    let ctx = |now| Context {
        now,
        actor: "crm-sync",
        request_id: None,
        policy,
    };
    let events = match rng.below(10) {
        0..=2 => vec![event(EngagementKind::DemoRequest, created_at)],
        3..=5 => vec![
            event(EngagementKind::WebinarAttended, created_at - Duration::days(2)),
            event(EngagementKind::PricingPageVisit, created_at),
        ],
        6 => vec![event(EngagementKind::ContentDownload, created_at)],
        _ => Vec::new(),
    };
    let created = engine::create(
        lead_id(index, created_at),
        profile(index, &mut rng),
        &events,
        &ctx(created_at),
    )
    .expect("a valid submission");
    let mut lead = created.lead;
    let mut entries = created.entries;
    // What happens next, at what time after the submission.
    let at = |after: Duration| created_at + after;
    let mut steps: Vec<(Timestamp, Command)> = Vec::new();
    if lead.state == LeadState::MarketingQualified {
        match rng.below(5) {
            0 => {
                let touch = at(Duration::minutes(2));
                steps.push((touch, attempt(ContactOutcome::Connected, touch)));
            }
            1 => {
                let late = at(Duration::minutes(45));
                steps.push((late, attempt(ContactOutcome::NoAnswer, late)));
            }
            2 | 3 => {
                let touch = at(Duration::minutes(3));
                steps.push((touch, attempt(ContactOutcome::Connected, touch)));
                steps.push((at(Duration::hours(2)), qualifying_call()));
                if rng.below(3) == 0 {
                    let opportunity_reference = format!("opp-{index}");
                    steps.push((
                        at(Duration::days(9)),
                        Command::Convert {
                            opportunity_reference,
                        },
                    ));
                }
            }
            _ => steps.push((at(Duration::hours(5)), disqualify(&mut rng))),
        }
    } else if rng.below(5) == 0 {
        steps.push((at(Duration::days(1)), disqualify(&mut rng)));
    }
    for (now, command) in steps {
        if let Ok(applied) = engine::apply(&lead, command, &ctx(now)) {
            lead = applied.lead;
            entries.extend(applied.entries);
        }
    }
    // What the sweeper would do when it falls due, done now: a served database then has no
    // backlog of due leads making writes while the reads are timed.
    for _ in 0..4 {
        let Some(due) = [lead.sla_due_at(), lead.revisit_due_at()]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        match engine::apply(&lead, Command::Tick, &ctx(due + Duration::seconds(1))) {
            Ok(applied) if !applied.entries.is_empty() => {
                lead = applied.lead;
                entries.extend(applied.entries);
            }
            _ => break,
        }
    }
    (lead, entries)
}
