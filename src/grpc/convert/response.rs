//! Domain values → responses.

use super::enums::{EnumMapping, opt_enum};
use crate::app::{LeadChange, LeadView, RowOutcome, RowResult};
use crate::domain::engine::Decision;
use crate::domain::facts::{Bant, Points, Reason, Recommendation, Scores};
use crate::domain::sla;
use crate::domain::values::Timestamp;
use crate::grpc::pb;

pub fn time_to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

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

#[expect(
    deprecated,
    reason = "fills `decision_maker_involved` for callers that still read it"
)]
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
        erase_time: l.erased_at.map(time_to_proto),
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

/// The response of an RPC that changes one existing lead: the lead and the engine's decision.
pub trait LeadChangeResponse {
    fn from_change(change: &LeadChange) -> Self;
}

macro_rules! lead_change_response {
    ($($response:ident),+ $(,)?) => {$(
        impl LeadChangeResponse for pb::$response {
            fn from_change(c: &LeadChange) -> Self {
                let (lead, decision) = change(c);
                Self { lead, decision }
            }
        }
    )+};
}

lead_change_response!(
    RecordEngagementResponse,
    RecordDiscoveryCallResponse,
    RecordContactAttemptResponse,
    OverrideLeadStateResponse,
    ReleaseLeadOverrideResponse,
    ConvertLeadResponse,
    MergeLeadsResponse,
);

/// UpdateLead answers the lead alone (AIP-134).
impl LeadChangeResponse for pb::Lead {
    fn from_change(c: &LeadChange) -> Self {
        lead(&c.lead)
    }
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
        hash: crate::domain::hex::to_hex(&head.hash),
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
        inputs: body.inputs.as_object().map(json_struct),
        state_before: opt_enum(e.state_before),
        state_after: opt_enum(e.state_after),
        scores_before: body.scores_before.as_ref().map(scores),
        scores_after: body.scores_after.as_ref().map(scores),
        reasons: reasons(&body.reasons),
        recommended_state: opt_enum(body.recommended_state),
        policy_version: e.policy_version.clone(),
        source_channel: opt_enum(e.source_channel),
        hash: crate::domain::hex::to_hex(&c.hash),
        previous_hash: crate::domain::hex::to_hex(&c.previous_hash),
        hash_algorithm: crate::domain::audit::HASH_ALGORITHM.into(),
        seal_key_id: c.seal.as_ref().map(|s| s.key_id.clone()).unwrap_or_default(),
        seal: c
            .seal
            .as_ref()
            .map(|s| crate::domain::hex::to_hex(&s.tag))
            .unwrap_or_default(),
    }
}

/// An import's answer: a result per row, in order, and the count of each outcome.
pub fn import_results(results: &[RowResult]) -> pb::ImportLeadsResponse {
    use pb::import_lead_result::Outcome;
    let count = |outcome: RowOutcome| results.iter().filter(|r| r.outcome == outcome).count() as i32;
    pb::ImportLeadsResponse {
        results: results
            .iter()
            .map(|r| {
                let (lead, etag) = r
                    .lead
                    .as_ref()
                    .map(|(id, etag)| (id.name(), etag.clone()))
                    .unwrap_or_default();
                pb::ImportLeadResult {
                    row: r.row,
                    outcome: match r.outcome {
                        RowOutcome::Created => Outcome::Created,
                        RowOutcome::Deduplicated => Outcome::Deduplicated,
                        RowOutcome::Refused => Outcome::Refused,
                    } as i32,
                    lead,
                    etag,
                    violations: r
                        .violations
                        .iter()
                        .map(|v| pb::FieldViolation {
                            field: v.field.clone(),
                            description: v.description.clone(),
                        })
                        .collect(),
                }
            })
            .collect(),
        created_count: count(RowOutcome::Created),
        deduplicated_count: count(RowOutcome::Deduplicated),
        refused_count: count(RowOutcome::Refused),
    }
}
