//! Proto ↔ domain. Requests are destructured field by field, so a field added to the contract
//! does not compile until it is handled here; every bad field is reported at once.

use std::sync::LazyLock;

use prost::Message;
use sha2::{Digest, Sha256};

use super::pb;
use crate::app::{AppError, LeadChange, LeadView, RequestKey};
use crate::domain::engine::{Decision, EventInput};
use crate::domain::facts::{
    AuthorityFinding, Bant, BudgetFinding, ContactAttempt, DiscoveryCall, Money, NeedFinding, Points, Reason,
    Recommendation, Scores, TimingFinding,
};
use crate::domain::lifecycle::LeadState;
use crate::domain::sla;
use crate::domain::validation::{Lines, Violations, no_control_characters};
use crate::domain::values::{
    self, BudgetStatus, Code, Company, Contact, ContactChannel, ContactOutcome, CountryCode, CriterionStatus,
    DisqualificationReason, DomainName, Email, EngagementKind, FitGrade, LeadId, Seniority, SlaTrigger,
    Source, SourceChannel, Timestamp,
};

/// Maps a domain enum to and from its proto enum by value name (`LEAD_STATE_` + `LEAD`).
macro_rules! enum_mapping {
    ($domain:ty, $proto:ty, $prefix:literal) => {
        impl EnumMapping for $domain {
            const PREFIX: &'static str = $prefix;

            fn to_proto(self) -> i32 {
                static TABLE: LazyLock<Vec<i32>> = LazyLock::new(|| {
                    <$domain>::ALL
                        .iter()
                        .map(|d| {
                            <$proto>::from_str_name(&format!("{}{}", $prefix, d.as_str()))
                                .map_or(0, |p| p as i32)
                        })
                        .collect()
                });
                TABLE[self as usize]
            }

            fn from_proto(value: i32) -> Result<Option<Self>, String> {
                let proto = <$proto>::try_from(value).map_err(|_| format!("{value} is not a known value"))?;
                let name = proto.as_str_name();
                let bare = name.strip_prefix($prefix).unwrap_or(name);
                if bare == "UNSPECIFIED" {
                    return Ok(None);
                }
                <$domain>::from_name(bare)
                    .map(Some)
                    .ok_or_else(|| format!("{name} is not supported"))
            }
        }
    };
}

/// A domain enum with a proto twin.
pub trait EnumMapping: Sized + Copy {
    const PREFIX: &'static str;
    fn to_proto(self) -> i32;
    /// `Ok(None)` for the `*_UNSPECIFIED` value.
    fn from_proto(value: i32) -> Result<Option<Self>, String>;
}

enum_mapping!(LeadState, pb::LeadState, "LEAD_STATE_");
enum_mapping!(Seniority, pb::Seniority, "SENIORITY_");
enum_mapping!(SourceChannel, pb::SourceChannel, "SOURCE_CHANNEL_");
enum_mapping!(
    DisqualificationReason,
    pb::DisqualificationReason,
    "DISQUALIFICATION_REASON_"
);
enum_mapping!(FitGrade, pb::FitGrade, "FIT_GRADE_");
enum_mapping!(CriterionStatus, pb::CriterionStatus, "CRITERION_STATUS_");
enum_mapping!(BudgetStatus, pb::BudgetStatus, "BUDGET_STATUS_");
enum_mapping!(EngagementKind, pb::EngagementKind, "ENGAGEMENT_KIND_");
enum_mapping!(ContactChannel, pb::ContactChannel, "CONTACT_CHANNEL_");
enum_mapping!(ContactOutcome, pb::ContactOutcome, "CONTACT_OUTCOME_");
enum_mapping!(SlaTrigger, pb::SlaTrigger, "SLA_TRIGGER_");
enum_mapping!(sla::SlaState, pb::SlaState, "SLA_STATE_");
enum_mapping!(
    crate::domain::audit::AuditKind,
    pb::AuditEventKind,
    "AUDIT_EVENT_KIND_"
);

fn opt_enum<E: EnumMapping>(value: Option<E>) -> i32 {
    value.map_or(0, E::to_proto)
}

/// An optional enum field: UNSPECIFIED is `None`, an unknown number a violation.
pub fn optional_enum<E: EnumMapping>(v: &mut Violations, field: &str, value: i32) -> Option<E> {
    v.check(field, E::from_proto(value)).flatten()
}

/// A required enum field.
pub fn required_enum<E: EnumMapping>(v: &mut Violations, field: &str, value: i32) -> Option<E> {
    match E::from_proto(value) {
        Ok(Some(e)) => Some(e),
        Ok(None) => {
            v.add(field, "is required");
            None
        }
        Err(why) => {
            v.add(field, why);
            None
        }
    }
}

pub fn time_to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A time from the API, at the precision leadgate keeps.
pub fn time_from_proto(t: &prost_types::Timestamp) -> Result<Timestamp, String> {
    // 0001-01-01 to 9999-12-31, as google.protobuf.Timestamp defines.
    if !(-62_135_596_800..=253_402_300_799).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err("must be a valid timestamp between years 1 and 9999".into());
    }
    chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32)
        .map(values::to_storage_precision)
        .ok_or_else(|| "must be a valid timestamp".into())
}

fn optional_time(v: &mut Violations, field: &str, t: Option<prost_types::Timestamp>) -> Option<Timestamp> {
    t.and_then(|t| v.check(field, time_from_proto(&t)))
}

/// A required single-line text (names, references): trimmed, not empty, at most `max`
/// characters, no control character.
pub fn required_text(v: &mut Violations, field: &str, value: String, max: usize) -> String {
    required(v, field, value, max, Lines::Single)
}

/// A required free text (a reason): like [`required_text`], but line feeds and tabs are kept.
pub fn required_multiline_text(v: &mut Violations, field: &str, value: String, max: usize) -> String {
    required(v, field, value, max, Lines::Multi)
}

fn required(v: &mut Violations, field: &str, value: String, max: usize, lines: Lines) -> String {
    if value.trim().is_empty() {
        v.add(field, "is required");
        return String::new();
    }
    checked_text(v, field, value, max, lines)
}

/// An optional single-line text: trimmed, at most `max` characters, no control character.
fn text(v: &mut Violations, field: &str, value: String, max: usize) -> String {
    checked_text(v, field, value, max, Lines::Single)
}

/// An optional free text (evidence): line feeds and tabs are kept, other controls refused.
fn multiline_text(v: &mut Violations, field: &str, value: String, max: usize) -> String {
    checked_text(v, field, value, max, Lines::Multi)
}

/// Every text a request carries to the database passes here, so none holds a NUL.
fn checked_text(v: &mut Violations, field: &str, value: String, max: usize, lines: Lines) -> String {
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    } else {
        v.check(field, no_control_characters(trimmed, lines));
    }
    trimmed.to_owned()
}

fn optional<T>(
    v: &mut Violations,
    field: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if value.trim().is_empty() {
        None
    } else {
        v.check(field, parse(value.trim()))
    }
}

/// The lead named by a request's `name`.
pub fn lead_name(v: &mut Violations, field: &str, name: &str) -> Option<LeadId> {
    v.check(field, LeadId::parse_name(name))
}

/// The longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The idempotency key of a request: its id (if any) and a hash of the request without it.
pub fn request_key<M: Message>(
    v: &mut Violations,
    method: &'static str,
    request_id: &str,
    request: &M,
) -> Option<RequestKey> {
    if request_id.is_empty() {
        return None;
    }
    let valid = request_id.len() <= MAX_REQUEST_ID_LEN
        && request_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if !valid {
        v.add(
            "request_id",
            format!("must be 1 to {MAX_REQUEST_ID_LEN} characters of A-Z a-z 0-9 . _ : -"),
        );
        return None;
    }
    let fingerprint = Sha256::new()
        .chain_update(method)
        .chain_update([0])
        .chain_update(request.encode_to_vec())
        .finalize()
        .into();
    Some(RequestKey {
        request_id: request_id.to_owned(),
        method,
        fingerprint,
    })
}

pub fn optional_etag(etag: String) -> Option<String> {
    (!etag.is_empty()).then_some(etag)
}

pub fn contact(v: &mut Violations, c: Option<pb::Contact>) -> Option<Contact> {
    let Some(pb::Contact {
        email,
        given_name,
        family_name,
        phone,
        job_title,
        seniority,
        job_function,
    }) = c
    else {
        v.add("contact.email", "is required");
        return None;
    };
    // Every field is checked before any is given up on, so all bad fields are reported.
    let email = v.check("contact.email", Email::parse(&email));
    let given_name = text(v, "contact.given_name", given_name, 100);
    let family_name = text(v, "contact.family_name", family_name, 100);
    let phone = optional(v, "contact.phone", &phone, values::parse_phone).unwrap_or_default();
    let job_title = text(v, "contact.job_title", job_title, 200);
    let seniority = optional_enum(v, "contact.seniority", seniority);
    let job_function = optional(v, "contact.job_function", &job_function, Code::parse);
    Some(Contact {
        email: email?,
        given_name,
        family_name,
        phone,
        job_title,
        seniority,
        job_function,
    })
}

pub fn company(v: &mut Violations, c: Option<pb::Company>) -> Company {
    let pb::Company {
        name,
        domain,
        industry,
        employee_count,
        country_code,
    } = c.unwrap_or_default();
    let employee_count = match employee_count {
        0 => None,
        n if (1..=10_000_000).contains(&n) => Some(n as u32),
        _ => {
            v.add(
                "company.employee_count",
                "must be between 0 (unknown) and 10000000",
            );
            None
        }
    };
    Company {
        name: text(v, "company.name", name, 200),
        domain: optional(v, "company.domain", &domain, DomainName::parse),
        industry: optional(v, "company.industry", &industry, Code::parse),
        employee_count,
        country: optional(v, "company.country_code", &country_code, CountryCode::parse),
    }
}

pub fn source(v: &mut Violations, s: Option<pb::Source>) -> Option<Source> {
    let Some(pb::Source { channel, campaign }) = s else {
        v.add("source.channel", "is required");
        return None;
    };
    let campaign = text(v, "source.campaign", campaign, 200);
    Some(Source {
        channel: required_enum(v, "source.channel", channel)?,
        campaign,
    })
}

/// The most signals one request may carry.
pub const MAX_EVENTS: usize = 100;

pub fn events(v: &mut Violations, field: &str, events: Vec<pb::EngagementEvent>) -> Vec<EventInput> {
    if events.len() > MAX_EVENTS {
        v.add(field, format!("must hold at most {MAX_EVENTS} events"));
        return Vec::new();
    }
    events
        .into_iter()
        .enumerate()
        .filter_map(
            |(
                i,
                pb::EngagementEvent {
                    kind,
                    occur_time,
                    subject,
                },
            )| {
                let kind = required_enum(v, &format!("{field}[{i}].kind"), kind);
                let occurred_at = optional_time(v, &format!("{field}[{i}].occur_time"), occur_time);
                let subject = text(v, &format!("{field}[{i}].subject"), subject, 200);
                Some(EventInput {
                    kind: kind?,
                    occurred_at,
                    subject,
                })
            },
        )
        .collect()
}

fn criterion(v: &mut Violations, field: &str, status: i32) -> Option<CriterionStatus> {
    optional_enum(v, field, status)
}

#[allow(deprecated)] // reads `decision_maker_involved` to map it onto `decision_maker`
pub fn discovery_call(v: &mut Violations, f: Option<pb::DiscoveryCallFindings>) -> DiscoveryCall {
    let Some(pb::DiscoveryCallFindings {
        call_time,
        need,
        budget,
        authority,
        timing,
        conducted_by,
    }) = f
    else {
        v.add("findings", "is required");
        return DiscoveryCall::default();
    };
    let pb::NeedFinding { status, evidence } = need.unwrap_or_default();
    let need = NeedFinding {
        status: criterion(v, "findings.need.status", status),
        evidence: multiline_text(v, "findings.need.evidence", evidence, 1000),
    };
    let pb::BudgetFinding {
        status,
        budget_status,
        amount,
        available_time,
        evidence,
    } = budget.unwrap_or_default();
    let amount = amount.map(|pb::Money { currency_code, units }| {
        let currency_ok = currency_code.len() == 3 && currency_code.chars().all(|c| c.is_ascii_uppercase());
        if !currency_ok {
            v.add(
                "findings.budget.amount.currency_code",
                "must be an ISO 4217 code such as EUR",
            );
        }
        if units < 0 {
            v.add("findings.budget.amount.units", "must not be negative");
        }
        Money {
            currency: currency_code,
            units,
        }
    });
    let budget = BudgetFinding {
        status: criterion(v, "findings.budget.status", status),
        budget_status: optional_enum(v, "findings.budget.budget_status", budget_status),
        amount,
        available_at: optional_time(v, "findings.budget.available_time", available_time),
        evidence: multiline_text(v, "findings.budget.evidence", evidence, 1000),
    };
    let pb::AuthorityFinding {
        status,
        decision_maker_involved,
        evidence,
        decision_maker,
    } = authority.unwrap_or_default();
    let decision_maker = {
        use crate::domain::values::DecisionMakerInvolvement as Involvement;
        use pb::DecisionMakerInvolvement as Proto;
        match Proto::try_from(decision_maker) {
            // The deprecated bool can only say "involved": its `false` is also "not given".
            Ok(Proto::Unspecified) => decision_maker_involved.then_some(Involvement::Involved),
            Ok(Proto::Involved) => Some(Involvement::Involved),
            Ok(Proto::NotInvolved) => {
                if decision_maker_involved {
                    v.add(
                        "findings.authority.decision_maker_involved",
                        "contradicts decision_maker (NOT_INVOLVED); send decision_maker alone",
                    );
                }
                Some(Involvement::NotInvolved)
            }
            Err(_) => {
                v.add(
                    "findings.authority.decision_maker",
                    format!("{decision_maker} is not a known value"),
                );
                None
            }
        }
    };
    let authority = AuthorityFinding {
        status: criterion(v, "findings.authority.status", status),
        decision_maker,
        evidence: multiline_text(v, "findings.authority.evidence", evidence, 1000),
    };
    let pb::TimingFinding {
        status,
        target_time,
        evidence,
    } = timing.unwrap_or_default();
    let timing = TimingFinding {
        status: criterion(v, "findings.timing.status", status),
        target_at: optional_time(v, "findings.timing.target_time", target_time),
        evidence: multiline_text(v, "findings.timing.evidence", evidence, 1000),
    };
    if [need.status, budget.status, authority.status, timing.status]
        .iter()
        .all(Option::is_none)
    {
        v.add(
            "findings",
            "must assess at least one of need, budget, authority, timing",
        );
    }
    DiscoveryCall {
        call_at: optional_time(v, "findings.call_time", call_time),
        need,
        budget,
        authority,
        timing,
        conducted_by: text(v, "findings.conducted_by", conducted_by, 128),
    }
}

pub fn contact_attempt(v: &mut Violations, a: Option<pb::ContactAttempt>) -> Option<ContactAttempt> {
    let Some(pb::ContactAttempt {
        channel,
        outcome,
        attempt_time,
        agent,
    }) = a
    else {
        v.add("attempt", "is required");
        return None;
    };
    let channel = required_enum(v, "attempt.channel", channel);
    let outcome = required_enum(v, "attempt.outcome", outcome);
    let attempt_at = optional_time(v, "attempt.attempt_time", attempt_time);
    let agent = text(v, "attempt.agent", agent, 128);
    Some(ContactAttempt {
        channel: channel?,
        outcome: outcome?,
        attempt_at,
        agent,
    })
}

/// A SubmitLead request, validated: every bad field is reported at once.
pub fn submission(
    mut request: pb::SubmitLeadRequest,
) -> Result<(crate::app::Submission, Option<RequestKey>), AppError> {
    let mut v = Violations::default();
    let request_id = std::mem::take(&mut request.request_id);
    let key = request_key(&mut v, "SubmitLead", &request_id, &request);
    let pb::SubmitLeadRequest {
        contact: contact_in,
        company: company_in,
        source: source_in,
        external_reference,
        events: events_in,
        request_id: _,
    } = request;
    let contact = contact(&mut v, contact_in);
    let company = company(&mut v, company_in);
    let source = source(&mut v, source_in);
    let external_reference = text(&mut v, "external_reference", external_reference, 128);
    let events = events(&mut v, "events", events_in);
    ensure_valid(v)?;
    let submission = crate::app::Submission {
        profile: values::Profile {
            contact: validated(contact)?,
            company,
            source: validated(source)?,
            external_reference,
        },
        events,
    };
    Ok((submission, key))
}

/// Reports the collected violations, or goes on.
pub fn ensure_valid(v: Violations) -> Result<(), AppError> {
    v.into_result().map_err(AppError::InvalidArgument)
}

/// A value that validation guarantees once [`ensure_valid`] passed.
pub fn validated<T>(value: Option<T>) -> Result<T, AppError> {
    value.ok_or_else(|| AppError::Internal("a validated field is missing".into()))
}

// ---- domain → proto ----

fn points(p: Points) -> f64 {
    p.as_f64()
}

pub fn scores(s: &Scores) -> pb::Scores {
    pb::Scores {
        fit_points: points(s.fit),
        fit_grade: s.grade.to_proto(),
        engagement_points: points(s.engagement),
        combined_points: points(s.combined),
        marketing_qualified_threshold: points(s.threshold),
        evaluate_time: Some(time_to_proto(s.evaluated_at)),
    }
}

pub fn reasons(reasons: &[Reason]) -> Vec<pb::Reason> {
    reasons
        .iter()
        .map(|r| pb::Reason {
            rule_id: r.rule_id.clone(),
            message: r.message.clone(),
        })
        .collect()
}

fn recommendation(r: &Recommendation) -> pb::Recommendation {
    pb::Recommendation {
        state: r.state.to_proto(),
        reasons: reasons(&r.reasons),
        create_time: Some(time_to_proto(r.made_at)),
    }
}

#[allow(deprecated)] // fills `decision_maker_involved` for callers that still read it
fn bant(b: &Bant) -> pb::BantAssessment {
    pb::BantAssessment {
        need: Some(pb::NeedFinding {
            status: opt_enum(b.need.status),
            evidence: b.need.evidence.clone(),
        }),
        budget: Some(pb::BudgetFinding {
            status: opt_enum(b.budget.status),
            budget_status: opt_enum(b.budget.budget_status),
            amount: b.budget.amount.as_ref().map(|m| pb::Money {
                currency_code: m.currency.clone(),
                units: m.units,
            }),
            available_time: b.budget.available_at.map(time_to_proto),
            evidence: b.budget.evidence.clone(),
        }),
        authority: Some({
            use crate::domain::values::DecisionMakerInvolvement as Involvement;
            use pb::DecisionMakerInvolvement as Proto;
            let decision_maker = match b.authority.decision_maker {
                None => Proto::Unspecified,
                Some(Involvement::Involved) => Proto::Involved,
                Some(Involvement::NotInvolved) => Proto::NotInvolved,
            };
            pb::AuthorityFinding {
                status: opt_enum(b.authority.status),
                // Kept for callers built before `decision_maker`.
                decision_maker_involved: decision_maker == Proto::Involved,
                evidence: b.authority.evidence.clone(),
                decision_maker: decision_maker as i32,
            }
        }),
        timing: Some(pb::TimingFinding {
            status: opt_enum(b.timing.status),
            target_time: b.timing.target_at.map(time_to_proto),
            evidence: b.timing.evidence.clone(),
        }),
        met_count: i32::from(b.met_count()),
        last_call_time: b.last_call_at.map(time_to_proto),
    }
}

pub fn lead(view: &LeadView) -> pb::Lead {
    let l = &view.lead;
    let p = &l.profile;
    let c = &p.contact;
    let sla = l.sla.as_ref();
    pb::Lead {
        name: l.id.name(),
        contact: Some(pb::Contact {
            email: c.email.as_str().to_owned(),
            given_name: c.given_name.clone(),
            family_name: c.family_name.clone(),
            phone: c.phone.clone(),
            job_title: c.job_title.clone(),
            seniority: opt_enum(c.seniority),
            job_function: c
                .job_function
                .as_ref()
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default(),
        }),
        company: Some(pb::Company {
            name: p.company.name.clone(),
            domain: p
                .company
                .domain
                .as_ref()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default(),
            industry: p
                .company
                .industry
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default(),
            employee_count: p.company.employee_count.map_or(0, |n| n as i32),
            country_code: p
                .company
                .country
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
        }),
        source: Some(pb::Source {
            channel: p.source.channel.to_proto(),
            campaign: p.source.campaign.clone(),
        }),
        external_reference: p.external_reference.clone(),
        state: l.state.to_proto(),
        state_reasons: reasons(&l.state_reasons),
        state_change_time: Some(time_to_proto(l.state_changed_at)),
        disqualification_reason: opt_enum(l.disqualification),
        revisit_time: l.revisit_at.map(time_to_proto),
        scores: Some(scores(&l.scores)),
        bant: Some(bant(&l.bant)),
        sla: Some(pb::SlaStatus {
            state: view.sla_state.to_proto(),
            trigger: opt_enum(sla.map(|c| c.trigger)),
            start_time: sla.map(|c| time_to_proto(c.started_at)),
            due_time: sla.map(|c| time_to_proto(c.due_at)),
            first_touch_time: sla.and_then(|c| c.first_touch_at).map(time_to_proto),
            time_to_first_touch: sla.and_then(sla::time_to_first_touch).map(duration_to_proto),
            attempt_count: sla.map_or(0, |c| c.attempts as i32),
            min_attempts_before_recycle: view.min_attempts_before_recycle as i32,
            breach_time: sla.and_then(|c| c.breached_at).map(time_to_proto),
        }),
        r#override: l.human_override.as_ref().map(human_override),
        recommendation: l.recommendation.as_ref().map(recommendation),
        opportunity_reference: l.opportunity_reference.clone().unwrap_or_default(),
        policy_version: l.policy_version.clone(),
        create_time: Some(time_to_proto(l.created_at)),
        update_time: Some(time_to_proto(l.updated_at)),
        etag: l.etag(),
    }
}

pub fn duration_to_proto(d: chrono::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: d.subsec_nanos(),
    }
}

pub fn decision(d: &Decision) -> pb::Decision {
    pb::Decision {
        state_before: opt_enum(d.state_before),
        state_after: d.state_after.to_proto(),
        state_changed: d.state_changed(),
        reasons: reasons(&d.reasons),
        recommendation: d.recommendation.as_ref().map(recommendation),
        policy_version: d.policy_version.clone(),
    }
}

fn score_lines(lines: &[crate::domain::scoring::ScoreLine]) -> Vec<pb::ScoreLine> {
    lines
        .iter()
        .map(|l| pb::ScoreLine {
            rule_id: l.rule_id.clone(),
            input: l.input.clone(),
            points: l.points.as_f64(),
            reason: l.reason.clone(),
        })
        .collect()
}

pub fn explanation(view: &LeadView, e: &crate::domain::engine::Explanation) -> pb::LeadExplanation {
    let lead = &view.lead;
    pb::LeadExplanation {
        lead: lead.id.name(),
        evaluate_time: Some(time_to_proto(e.evaluated_at)),
        policy_version: e.policy_version.clone(),
        fit_lines: score_lines(&e.fit_lines),
        engagement_lines: score_lines(&e.engagement_lines),
        scores: Some(scores(&e.scores)),
        state: lead.state.to_proto(),
        recommended_state: e.target.state.to_proto(),
        decision_lines: reasons(&e.target.reasons),
        r#override: lead.human_override.as_ref().map(human_override),
        text: e.render(lead),
    }
}

fn human_override(o: &crate::domain::facts::Override) -> pb::Override {
    pb::Override {
        state: o.state.to_proto(),
        reason: o.reason.clone(),
        actor: o.actor.clone(),
        create_time: Some(time_to_proto(o.decided_at)),
        expire_time: o.expires_at.map(time_to_proto),
    }
}

/// The (lead, decision) pair every mutating lead RPC answers.
pub fn change(c: &LeadChange) -> (Option<pb::Lead>, Option<pb::Decision>) {
    (Some(lead(&c.lead)), Some(decision(&c.decision)))
}

/// JSON as `google.protobuf.Value`.
pub fn json_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
    }
}

pub fn digest(head: &crate::domain::audit::ChainHead) -> pb::AuditDigest {
    pb::AuditDigest {
        position: head.position,
        hash: crate::domain::audit::to_hex(&head.hash),
        hash_algorithm: crate::domain::audit::HASH_ALGORITHM.into(),
        token: head.token(),
    }
}

pub fn audit_event(c: &crate::domain::audit::ChainedEntry) -> pb::AuditEvent {
    let e = &c.entry;
    let body = e.parsed_body();
    pb::AuditEvent {
        name: format!("auditEvents/{}", c.position),
        position: c.position,
        lead: e.lead.map(|l| l.name()).unwrap_or_default(),
        kind: e.kind.to_proto(),
        record_time: Some(time_to_proto(e.recorded_at)),
        actor: e.actor.clone(),
        request_id: e.request_id.clone().unwrap_or_default(),
        inputs: match &body.inputs {
            serde_json::Value::Object(map) => Some(json_struct(map)),
            _ => None,
        },
        state_before: opt_enum(e.state_before),
        state_after: opt_enum(e.state_after),
        scores_before: body.scores_before.as_ref().map(scores),
        scores_after: body.scores_after.as_ref().map(scores),
        reasons: reasons(&body.reasons),
        recommended_state: opt_enum(body.recommended_state),
        policy_version: e.policy_version.clone(),
        source_channel: opt_enum(e.source_channel),
        hash: crate::domain::audit::to_hex(&c.hash),
        previous_hash: crate::domain::audit::to_hex(&c.previous_hash),
        hash_algorithm: crate::domain::audit::HASH_ALGORITHM.into(),
        seal_key_id: c.seal.as_ref().map(|s| s.key_id.clone()).unwrap_or_default(),
        seal: c
            .seal
            .as_ref()
            .map(|s| crate::domain::audit::to_hex(&s.tag))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<E: EnumMapping + PartialEq + std::fmt::Debug>(all: &[E]) {
        for value in all {
            let proto = value.to_proto();
            assert_ne!(proto, 0, "{value:?} has no proto value");
            assert_eq!(E::from_proto(proto).unwrap(), Some(*value));
        }
    }

    fn covers<P: TryFrom<i32>, E: EnumMapping>(count: i32) {
        for n in 1..count {
            assert!(
                E::from_proto(n).unwrap().is_some(),
                "{}{n} has no domain value",
                E::PREFIX
            );
        }
        assert!(
            P::try_from(count).is_err(),
            "{} has values beyond {count}",
            E::PREFIX
        );
        assert_eq!(E::from_proto(0).unwrap().map(E::to_proto), None);
    }

    #[test]
    fn every_enum_maps_both_ways() {
        round_trips(LeadState::ALL);
        round_trips(Seniority::ALL);
        round_trips(SourceChannel::ALL);
        round_trips(DisqualificationReason::ALL);
        round_trips(FitGrade::ALL);
        round_trips(CriterionStatus::ALL);
        round_trips(BudgetStatus::ALL);
        round_trips(EngagementKind::ALL);
        round_trips(ContactChannel::ALL);
        round_trips(ContactOutcome::ALL);
        round_trips(SlaTrigger::ALL);
        round_trips(sla::SlaState::ALL);
        round_trips(crate::domain::audit::AuditKind::ALL);
        covers::<pb::LeadState, LeadState>(LeadState::ALL.len() as i32 + 1);
        covers::<pb::EngagementKind, EngagementKind>(EngagementKind::ALL.len() as i32 + 1);
        covers::<pb::SourceChannel, SourceChannel>(SourceChannel::ALL.len() as i32 + 1);
        covers::<pb::AuditEventKind, crate::domain::audit::AuditKind>(
            crate::domain::audit::AuditKind::ALL.len() as i32 + 1,
        );
    }

    #[test]
    fn unknown_enum_numbers_are_rejected() {
        assert!(LeadState::from_proto(99).is_err());
    }
}
