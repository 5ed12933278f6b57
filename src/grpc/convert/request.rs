//! Requests → domain values. Each request is destructured field by field, so a field added to
//! the contract does not compile until it is handled here; every bad field is reported at once.

use prost::Message;
use sha2::{Digest, Sha256};

use super::enums::{optional_enum, required_enum};
use crate::app::{AppError, MergeRequest, RequestKey};
use std::collections::BTreeSet;

use crate::domain::engine::{
    Command, EventInput, OverrideRequest, ProfileField, ProfileUpdate, ProfileValues,
};
use crate::domain::facts::{
    AuthorityFinding, BudgetFinding, ContactAttempt, DiscoveryCall, Money, NeedFinding, TimingFinding,
};
use crate::domain::lifecycle::LeadState;
use crate::domain::validation::{Lines, Violations, no_control_characters};
use crate::domain::values::{
    self, Code, Company, Contact, CountryCode, CriterionStatus, DisqualificationReason, DomainName, Email,
    LeadId, Source, Timestamp,
};
use crate::grpc::{Rpc, pb};

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
    rpc: Rpc,
    request_id: &str,
    request: &M,
) -> Option<RequestKey> {
    let method = rpc.name();
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
    let Some(c) = c else {
        v.add("contact.email", "is required");
        return None;
    };
    let ProfileValues {
        email,
        given_name,
        family_name,
        phone,
        job_title,
        seniority,
        job_function,
        company: _,
    } = contact_values(v, "", c);
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

/// A contact's fields, each checked and reported at its path under `prefix` (`lead.` in an
/// UpdateLead); the company is left empty.
fn contact_values(v: &mut Violations, prefix: &str, c: pb::Contact) -> ProfileValues {
    let pb::Contact {
        email,
        given_name,
        family_name,
        phone,
        job_title,
        seniority,
        job_function,
    } = c;
    let at = |field: &str| format!("{prefix}contact.{field}");
    // Every field is checked before any is given up on, so all bad fields are reported.
    ProfileValues {
        email: v.check(at("email"), Email::parse(&email)),
        given_name: text(v, &at("given_name"), given_name, 100),
        family_name: text(v, &at("family_name"), family_name, 100),
        phone: optional(v, &at("phone"), &phone, values::parse_phone).unwrap_or_default(),
        job_title: text(v, &at("job_title"), job_title, 200),
        seniority: optional_enum(v, &at("seniority"), seniority),
        job_function: optional(v, &at("job_function"), &job_function, Code::parse),
        company: Company::default(),
    }
}

pub fn company(v: &mut Violations, c: Option<pb::Company>) -> Company {
    company_at(v, "", c)
}

/// A company, each field checked and reported at its path under `prefix`.
fn company_at(v: &mut Violations, prefix: &str, c: Option<pb::Company>) -> Company {
    let at = |field: &str| format!("{prefix}company.{field}");
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
            v.add(at("employee_count"), "must be between 0 (unknown) and 10000000");
            None
        }
    };
    Company {
        name: text(v, &at("name"), name, 200),
        domain: optional(v, &at("domain"), &domain, DomainName::parse),
        industry: optional(v, &at("industry"), &industry, Code::parse),
        employee_count,
        country: optional(v, &at("country_code"), &country_code, CountryCode::parse),
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

#[expect(
    deprecated,
    reason = "reads `decision_maker_involved` to map it onto `decision_maker`"
)]
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

/// An EraseLead request, validated: the lead and why.
pub fn erasure(request: pb::EraseLeadRequest) -> Result<((LeadId, String), Option<RequestKey>), AppError> {
    decode_idempotent(request, |v, request| {
        let pb::EraseLeadRequest {
            name,
            reason,
            request_id: _,
        } = request;
        let id = lead_name(v, "name", &name);
        let reason = required_text(v, "reason", reason, 500);
        Some((id?, reason))
    })
}

/// A SubmitLead request, validated: every bad field is reported at once.
pub fn submission(
    request: pb::SubmitLeadRequest,
) -> Result<(crate::app::Submission, Option<RequestKey>), AppError> {
    decode_idempotent(request, decode_submission)
}

/// The fields of a SubmitLead request but its request id, each bad one reported in `v`; `None`
/// only after reporting a violation.
fn decode_submission(v: &mut Violations, request: pb::SubmitLeadRequest) -> Option<crate::app::Submission> {
    let pb::SubmitLeadRequest {
        contact: contact_in,
        company: company_in,
        source: source_in,
        external_reference,
        events: events_in,
        request_id: _,
    } = request;
    let contact = contact(v, contact_in);
    let company = company(v, company_in);
    let source = source(v, source_in);
    let external_reference = text(v, "external_reference", external_reference, 128);
    let events = events(v, "events", events_in);
    Some(crate::app::Submission {
        profile: values::Profile {
            contact: contact?,
            company,
            source: source?,
            external_reference,
        },
        events,
    })
}

/// The most rows one ImportLeads call takes.
pub const MAX_IMPORT_ROWS: usize = 1000;

/// The longest import id: its derived request ids (`import:{id}:{row}`) stay within
/// [`MAX_REQUEST_ID_LEN`] for any row number.
pub const MAX_IMPORT_ID_LEN: usize = 100;

/// An ImportLeads request, validated. The request's own fields (`import_id`, `first_row`, the
/// number of rows) fail the call with INVALID_ARGUMENT; a bad row is refused alone, with its
/// violations named by their path in the row's SubmitLeadRequest. Returns the rows and whether
/// the call is a dry run.
pub fn import_rows(request: pb::ImportLeadsRequest) -> Result<(Vec<crate::app::ImportRow>, bool), AppError> {
    let pb::ImportLeadsRequest {
        import_id,
        first_row,
        leads,
        validate_only,
    } = request;
    let mut v = Violations::default();
    let id_ok = (1..=MAX_IMPORT_ID_LEN).contains(&import_id.len())
        && import_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if import_id.is_empty() {
        v.add("import_id", "is required");
    } else if !id_ok {
        v.add(
            "import_id",
            format!("must be 1 to {MAX_IMPORT_ID_LEN} characters of A-Z a-z 0-9 . _ -"),
        );
    }
    // Row numbers stay far below what a request id (or an i64) holds.
    const MAX_FIRST_ROW: i64 = 1_000_000_000_000;
    if !(0..=MAX_FIRST_ROW).contains(&first_row) {
        v.add(
            "first_row",
            format!("must be between 1 and {MAX_FIRST_ROW} (0 means 1)"),
        );
    }
    if leads.is_empty() {
        v.add("leads", "is required: 1 to 1000 rows");
    } else if leads.len() > MAX_IMPORT_ROWS {
        v.add(
            "leads",
            format!(
                "must hold at most {MAX_IMPORT_ROWS} rows (got {}): split the import into calls",
                leads.len()
            ),
        );
    }
    ensure_valid(v)?;
    let first_row = first_row.max(1);
    let rows = leads
        .into_iter()
        .zip(first_row..)
        .map(|(mut lead, row)| {
            let mut v = Violations::default();
            if !lead.request_id.is_empty() {
                v.add(
                    "request_id",
                    "must be empty: each row's request id is derived from the import id and the row number",
                );
            }
            lead.request_id.clear();
            let key = request_key(
                &mut v,
                Rpc::ImportLeads,
                &crate::app::row_request_id(&import_id, row),
                &lead,
            );
            let submission = decode_submission(&mut v, lead);
            let submission = match (submission, key, v.into_result()) {
                (Some(submission), Some(key), Ok(())) => Ok((submission, key)),
                (_, _, Err(v)) => Err(v),
                (None, _, Ok(())) | (_, None, Ok(())) => {
                    let mut v = Violations::default();
                    v.add("", "the row could not be read");
                    Err(v)
                }
            };
            crate::app::ImportRow { row, submission }
        })
        .collect();
    Ok((rows, validate_only))
}

/// A request that carries an idempotency `request_id`.
pub trait Idempotent: Message + Sized {
    /// The RPC it is sent to: a request id names one request of one RPC, so it cannot replay
    /// another RPC's answer.
    const RPC: Rpc;

    /// Takes the request id out, so the request's fingerprint covers everything else.
    fn take_request_id(&mut self) -> String;
}

macro_rules! idempotent {
    ($($request:ident => $rpc:ident),+ $(,)?) => {$(
        impl Idempotent for pb::$request {
            const RPC: Rpc = Rpc::$rpc;

            fn take_request_id(&mut self) -> String {
                std::mem::take(&mut self.request_id)
            }
        }
    )+};
}

idempotent! {
    SubmitLeadRequest => SubmitLead,
    RecordEngagementRequest => RecordEngagement,
    RecordDiscoveryCallRequest => RecordDiscoveryCall,
    RecordContactAttemptRequest => RecordContactAttempt,
    OverrideLeadStateRequest => OverrideLeadState,
    ReleaseLeadOverrideRequest => ReleaseLeadOverride,
    ConvertLeadRequest => ConvertLead,
    UpdateLeadRequest => UpdateLead,
    EraseLeadRequest => EraseLead,
    MergeLeadsRequest => MergeLeads,
}

/// An idempotent request, validated whole: its request id first, then every field by `decode`,
/// every bad field reported at once. `decode` answers `None` only after reporting a violation.
/// Returns the decoded value and the request's idempotency key.
fn decode_idempotent<R: Idempotent, T>(
    mut request: R,
    decode: impl FnOnce(&mut Violations, R) -> Option<T>,
) -> Result<(T, Option<RequestKey>), AppError> {
    let mut v = Violations::default();
    let request_id = request.take_request_id();
    let key = request_key(&mut v, R::RPC, &request_id, &request);
    let decoded = decode(&mut v, request);
    ensure_valid(v)?;
    Ok((validated(decoded)?, key))
}

/// A MergeLeads request, validated: every bad field is reported at once.
pub fn merge_request(request: pb::MergeLeadsRequest) -> Result<(MergeRequest, Option<RequestKey>), AppError> {
    decode_idempotent(request, |v, request| {
        let pb::MergeLeadsRequest {
            winner,
            loser,
            winner_etag,
            loser_etag,
            reason,
            request_id: _,
        } = request;
        let winner = lead_name(v, "winner", &winner);
        let loser = lead_name(v, "loser", &loser);
        if winner.is_some() && winner == loser {
            v.add(
                "loser",
                "must name another lead than winner: a lead cannot be merged with itself",
            );
        }
        let reason = multiline_text(v, "reason", reason, 1000);
        Some(MergeRequest {
            winner: winner?,
            loser: loser?,
            winner_etag: optional_etag(winner_etag),
            loser_etag: optional_etag(loser_etag),
            reason,
        })
    })
}

/// A request to change one lead, decoded.
pub struct LeadCommand {
    pub lead: LeadId,
    /// The etag the caller read the lead at, when it sent one.
    pub etag: Option<String>,
    pub command: Command,
}

/// A request that changes one existing lead with one of the engine's commands.
pub trait LeadCommandRequest: Idempotent {
    /// Checks every field, reporting each bad one in `v`, and builds the command; `None` only
    /// after reporting a violation.
    fn decode(self, v: &mut Violations) -> Option<LeadCommand>;
}

/// A request that changes one lead, validated: every bad field is reported at once.
pub fn lead_command<R: LeadCommandRequest>(
    request: R,
) -> Result<(LeadCommand, Option<RequestKey>), AppError> {
    decode_idempotent(request, |v, request| request.decode(v))
}

impl LeadCommandRequest for pb::RecordEngagementRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::RecordEngagementRequest {
            name,
            events: events_in,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        if events_in.is_empty() {
            v.add("events", "must hold at least one event");
        }
        let events = events(v, "events", events_in);
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::RecordEngagement { events },
        })
    }
}

impl LeadCommandRequest for pb::RecordDiscoveryCallRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::RecordDiscoveryCallRequest {
            name,
            findings,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        let findings = discovery_call(v, findings);
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::RecordDiscoveryCall(findings),
        })
    }
}

impl LeadCommandRequest for pb::RecordContactAttemptRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::RecordContactAttemptRequest {
            name,
            attempt,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        let attempt = contact_attempt(v, attempt);
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::RecordContactAttempt(attempt?),
        })
    }
}

impl LeadCommandRequest for pb::OverrideLeadStateRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::OverrideLeadStateRequest {
            name,
            state,
            reason,
            disqualification_reason,
            revisit_time,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        let state: Option<LeadState> = required_enum(v, "state", state);
        let reason = required_multiline_text(v, "reason", reason, 1000);
        let disqualification: Option<DisqualificationReason> =
            optional_enum(v, "disqualification_reason", disqualification_reason);
        match (state, disqualification) {
            (Some(LeadState::Disqualified), None) => {
                v.add("disqualification_reason", "is required to disqualify")
            }
            (Some(s), Some(_)) if s != LeadState::Disqualified => {
                v.add("disqualification_reason", "is only for DISQUALIFIED")
            }
            _ => {}
        }
        let revisit_at = revisit_time.and_then(|t| v.check("revisit_time", time_from_proto(&t)));
        if revisit_at.is_some() && state.is_some_and(|s| s != LeadState::Nurturing) {
            v.add("revisit_time", "is only for NURTURING");
        }
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::Override(OverrideRequest {
                state: state?,
                reason,
                disqualification,
                revisit_at,
            }),
        })
    }
}

impl LeadCommandRequest for pb::ReleaseLeadOverrideRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::ReleaseLeadOverrideRequest {
            name,
            reason,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        let reason = required_multiline_text(v, "reason", reason, 1000);
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::ReleaseOverride { reason },
        })
    }
}

impl LeadCommandRequest for pb::ConvertLeadRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::ConvertLeadRequest {
            name,
            opportunity_reference,
            etag,
            request_id: _,
        } = self;
        let lead = lead_name(v, "name", &name);
        let opportunity_reference = required_text(v, "opportunity_reference", opportunity_reference, 128);
        Some(LeadCommand {
            lead: lead?,
            etag: optional_etag(etag),
            command: Command::Convert {
                opportunity_reference,
            },
        })
    }
}

impl LeadCommandRequest for pb::UpdateLeadRequest {
    fn decode(self, v: &mut Violations) -> Option<LeadCommand> {
        let pb::UpdateLeadRequest {
            lead,
            update_mask,
            request_id: _,
        } = self;
        let fields = update_mask_fields(v, update_mask);
        let Some(lead) = lead else {
            v.add("lead", "is required");
            return None;
        };
        // Only `name`, `etag` and the masked fields are read: AIP-134 ignores the rest.
        let pb::Lead {
            name,
            contact,
            company,
            etag,
            source: _,
            external_reference: _,
            state: _,
            state_reasons: _,
            state_change_time: _,
            disqualification_reason: _,
            revisit_time: _,
            scores: _,
            bant: _,
            sla: _,
            r#override: _,
            recommendation: _,
            opportunity_reference: _,
            policy_version: _,
            create_time: _,
            update_time: _,
            erase_time: _,
        } = lead;
        let id = lead_name(v, "lead.name", &name);
        // Validated as on submission; only the masked fields' violations count (an email left out
        // of the mask may well be empty here).
        let mut checked = Violations::default();
        let mut values = contact_values(&mut checked, "lead.", contact.unwrap_or_default());
        values.company = company_at(&mut checked, "lead.", company);
        for violation in checked.iter() {
            let path = violation.field.strip_prefix("lead.").unwrap_or_default();
            if ProfileField::from_name(path).is_some_and(|f| fields.contains(&f)) {
                v.add(violation.field.clone(), violation.description.clone());
            }
        }
        Some(LeadCommand {
            lead: id?,
            etag: optional_etag(etag),
            command: Command::UpdateProfile(ProfileUpdate { fields, values }),
        })
    }
}

/// The fields an UpdateLead's mask names; every path that is not one is reported on
/// `update_mask`. `contact` and `company` stand for all their fields; `*` is refused, so that a
/// caller always says what it changes.
fn update_mask_fields(v: &mut Violations, mask: Option<prost_types::FieldMask>) -> BTreeSet<ProfileField> {
    const OUTPUT_ONLY: &[&str] = &[
        "name",
        "state",
        "state_reasons",
        "state_change_time",
        "disqualification_reason",
        "revisit_time",
        "scores",
        "bant",
        "sla",
        "override",
        "recommendation",
        "opportunity_reference",
        "policy_version",
        "create_time",
        "update_time",
        "etag",
    ];
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "must name at least one field to change");
    }
    fn all_of(prefix: &'static str) -> impl Iterator<Item = ProfileField> {
        ProfileField::ALL
            .iter()
            .copied()
            .filter(move |f| f.as_str().starts_with(prefix))
    }
    let mut fields = BTreeSet::new();
    for path in paths {
        match path.as_str() {
            "*" => v.add("update_mask", "`*` is not accepted: name the fields to change"),
            "contact" => fields.extend(all_of("contact.")),
            "company" => fields.extend(all_of("company.")),
            p => match ProfileField::from_name(p) {
                Some(field) => {
                    fields.insert(field);
                }
                None => {
                    let top = p.split('.').next().unwrap_or_default();
                    let why = if OUTPUT_ONLY.contains(&top) {
                        "is output only".to_owned()
                    } else if top == "source" || top == "external_reference" {
                        "cannot be changed: it records where the lead came from".to_owned()
                    } else {
                        format!(
                            "is not a field UpdateLead changes (one of {}, or contact, company)",
                            ProfileField::NAMES.join(", ")
                        )
                    };
                    v.add("update_mask", format!("{:?} {why}", values::clip(p)));
                }
            },
        }
    }
    fields
}

/// Reports the collected violations, or goes on.
pub fn ensure_valid(v: Violations) -> Result<(), AppError> {
    v.into_result().map_err(AppError::InvalidArgument)
}

/// A value that validation guarantees once [`ensure_valid`] passed.
pub fn validated<T>(value: Option<T>) -> Result<T, AppError> {
    value.ok_or_else(|| AppError::Internal("a validated field is missing".into()))
}
