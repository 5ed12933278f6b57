//! Leads and contexts for the engine's tests.

use chrono::{Duration, TimeZone, Utc};

use super::{Applied, Command, Context, EventInput, apply, create};
use crate::domain::lead::Lead;
use crate::domain::policy::Policy;
use crate::domain::values::{
    Code, Company, Contact, CountryCode, Email, EngagementKind, LeadId, Profile, Seniority, Source,
    SourceChannel, Timestamp,
};

/// A Monday morning in March 2026.
pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub fn at(minutes: i64) -> Timestamp {
    t0() + Duration::minutes(minutes)
}

pub fn policy() -> Policy {
    Policy::default_policy()
}

/// The default policy with some lines replaced.
pub fn policy_with(replacements: &[(&str, &str)]) -> Policy {
    let mut text = crate::domain::policy::DEFAULT_POLICY.to_owned();
    for (from, to) in replacements {
        assert!(text.contains(from), "{from:?} is in the default policy");
        text = text.replace(from, to);
    }
    Policy::parse(&text).expect("a valid policy")
}

pub fn ctx<'a>(policy: &'a Policy, now: Timestamp) -> Context<'a> {
    Context {
        now,
        actor: "crm-sync",
        request_id: None,
        policy,
    }
}

pub fn person<'a>(policy: &'a Policy, now: Timestamp, actor: &'a str) -> Context<'a> {
    Context {
        now,
        actor,
        request_id: Some("req-1"),
        policy,
    }
}

pub struct ProfileSpec {
    pub email: &'static str,
    pub industry: Option<&'static str>,
    pub employees: Option<u32>,
    pub country: Option<&'static str>,
    pub seniority: Option<Seniority>,
    pub function: Option<&'static str>,
    pub channel: SourceChannel,
}

impl ProfileSpec {
    pub fn build(&self) -> Profile {
        Profile {
            contact: Contact {
                email: Email::parse(self.email).unwrap(),
                given_name: "Given".into(),
                family_name: "Family".into(),
                phone: "+33 1 00 00 00 00".into(),
                job_title: "Title".into(),
                seniority: self.seniority,
                job_function: self.function.map(|f| Code::parse(f).unwrap()),
            },
            company: Company {
                name: "Company".into(),
                domain: None,
                industry: self.industry.map(|i| Code::parse(i).unwrap()),
                employee_count: self.employees,
                country: self.country.map(|c| CountryCode::parse(c).unwrap()),
            },
            source: Source {
                channel: self.channel,
                campaign: String::new(),
            },
            external_reference: String::new(),
        }
    }
}

/// Grade A, 40 fit points: an executive in finance at a 300-person French manufacturer.
pub fn cfo() -> ProfileSpec {
    ProfileSpec {
        email: "cfo@acme-industrie.fr",
        industry: Some("manufacturing"),
        employees: Some(300),
        country: Some("FR"),
        seniority: Some(Seniority::Executive),
        function: Some("finance"),
        channel: SourceChannel::Website,
    }
}

/// Grade A, 37 fit points: a purchasing director at a 300-person French manufacturer.
pub fn purchasing_director() -> ProfileSpec {
    ProfileSpec {
        email: "achats@acme-industrie.fr",
        seniority: Some(Seniority::Director),
        function: Some("purchasing"),
        channel: SourceChannel::TradeShow,
        ..cfo()
    }
}

/// Grade D: a 12-person law firm, however senior the contact.
pub fn law_firm() -> ProfileSpec {
    ProfileSpec {
        email: "associe@cabinet-avocats.fr",
        industry: Some("legal_services"),
        employees: Some(12),
        ..cfo()
    }
}

/// Nothing known but an email: 0 fit points, grade D.
pub fn unknown() -> ProfileSpec {
    ProfileSpec {
        email: "someone@example.com",
        industry: None,
        employees: None,
        country: None,
        seniority: None,
        function: None,
        channel: SourceChannel::Other,
    }
}

pub fn event(kind: EngagementKind, occurred_at: Timestamp) -> EventInput {
    EventInput {
        kind,
        occurred_at: Some(occurred_at),
        subject: String::new(),
    }
}

pub fn submit(spec: &ProfileSpec, events: &[EventInput], policy: &Policy, now: Timestamp) -> Applied {
    create(
        LeadId::from_uuid(uuid::Uuid::from_u128(7)),
        spec.build(),
        events,
        &ctx(policy, now),
    )
    .expect("a valid submission")
}

pub fn run(lead: &Lead, command: Command, policy: &Policy, now: Timestamp) -> Applied {
    apply(lead, command, &ctx(policy, now)).expect("the command applies")
}
