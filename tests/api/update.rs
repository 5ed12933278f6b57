//! UpdateLead: contact and company corrections through an update mask, and what a resubmission
//! does with the values it brings.

use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

/// An UpdateLead of `name` setting the given paths from `lead`'s contact and company.
pub fn update(
    name: &str,
    etag: &str,
    contact: pb::Contact,
    company: pb::Company,
    paths: &[&str],
) -> pb::UpdateLeadRequest {
    pb::UpdateLeadRequest {
        lead: Some(pb::Lead {
            name: name.into(),
            etag: etag.into(),
            contact: Some(contact),
            company: Some(company),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        request_id: String::new(),
    }
}

fn phone(number: &str) -> pb::Contact {
    pb::Contact {
        phone: number.into(),
        ..Default::default()
    }
}

fn email(address: &str) -> pb::Contact {
    pb::Contact {
        email: address.into(),
        ..Default::default()
    }
}

async fn audit_events(app: &TestApp, filter: String) -> Vec<pb::AuditEvent> {
    app.db.wait_until_chained().await;
    let request = pb::ListAuditEventsRequest {
        filter,
        page_size: 100,
        ..Default::default()
    };
    AuditServiceClient::new(app.channel.clone())
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

fn inputs(event: &pb::AuditEvent) -> serde_json::Value {
    let inputs = event.inputs.clone().unwrap();
    let value = prost_types::Value {
        kind: Some(prost_types::value::Kind::StructValue(inputs)),
    };
    to_json(&value)
}

fn to_json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match value.kind.as_ref().unwrap() {
        Kind::NullValue(_) => serde_json::Value::Null,
        Kind::BoolValue(b) => (*b).into(),
        Kind::NumberValue(n) => (*n).into(),
        Kind::StringValue(s) => s.clone().into(),
        Kind::ListValue(l) => l.values.iter().map(to_json).collect(),
        Kind::StructValue(s) => s
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// The names of the leads ListLeads finds with `filter`.
async fn found(app: &TestApp, filter: &str) -> Vec<String> {
    let request = pb::ListLeadsRequest {
        filter: filter.into(),
        ..Default::default()
    };
    let page = app.leads.clone().list_leads(request).await.unwrap().into_inner();
    page.leads.into_iter().map(|l| l.name).collect()
}

contract! {
    async fn a_corrected_lead_is_found_by_its_new_values_only(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        let company = pb::Company { name: "Brightwave Labs".into(), domain: "brightwave.io".into(), ..Default::default() };
        // The company alone, then the email too (a write that changes the email's index entry).
        let request = update(&lead.name, &lead.etag, phone(""), company, &["company.name", "company.domain"]);
        let updated = app.leads.clone().update_lead(request).await.unwrap().into_inner();
        for filter in ["company.domain = \"brightwave.io\"", "company.name : \"brightwave\""] {
            assert_eq!(found(&app, filter).await, [lead.name.as_str()], "{filter}");
        }
        assert!(found(&app, "company.name : \"acme\"").await.is_empty());
        let request = update(&lead.name, &updated.etag, email("claire@brightwave.io"), pb::Company {
            name: "Brightwave SA".into(), ..Default::default()
        }, &["contact.email", "company.name"]);
        app.leads.clone().update_lead(request).await.unwrap();
        assert_eq!(found(&app, "contact.email = \"claire@brightwave.io\"").await, [lead.name.as_str()]);
        assert_eq!(found(&app, "company.name = \"brightwave sa\"").await, [lead.name.as_str()]);
        assert!(found(&app, "company.name = \"brightwave labs\"").await.is_empty());
        assert!(found(&app, "contact.email = \"claire.martin@acme-industrie.fr\"").await.is_empty());
    }

    async fn an_update_corrects_contact_and_company_scores_again_and_records_paths_only(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        assert_eq!(lead.scores.as_ref().unwrap().fit_grade, pb::FitGrade::A as i32);
        let company = pb::Company { industry: "legal_services".into(), employee_count: 12, ..Default::default() };
        let request = update(&lead.name, &lead.etag, phone("+33 6 98 76 54 32"), company,
            &["contact.phone", "company.industry", "company.employee_count"]);
        let updated = app.leads.clone().update_lead(request).await.unwrap().into_inner();
        assert_eq!(updated.name, lead.name);
        assert_ne!(updated.etag, lead.etag);
        let contact = updated.contact.as_ref().unwrap();
        assert_eq!(contact.phone, "+33 6 98 76 54 32");
        assert_eq!(contact.given_name, "Claire", "not in the mask: kept");
        assert_eq!(updated.company.as_ref().unwrap().name, "Acme Industrie");
        assert_eq!(updated.scores.as_ref().unwrap().fit_grade, pb::FitGrade::D as i32, "scored again");
        let read = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(read.etag, updated.etag);
        assert_eq!(read.contact.unwrap().phone, "+33 6 98 76 54 32");

        let events = audit_events(&app, format!("lead = \"{}\" AND kind = LEAD_UPDATED", lead.name)).await;
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(
            inputs(event),
            serde_json::json!({
                "fields": ["contact.phone", "company.industry", "company.employee_count"],
                "company": { "industry": "legal_services", "employee_count": 12.0 },
            })
        );
        let everything = format!("{event:?}");
        for personal in ["98 76", "Claire", "Martin", "claire.martin"] {
            assert!(!everything.contains(personal), "{personal:?} in {everything}");
        }
    }

    async fn an_update_that_changes_nothing_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("same@acme-industrie.fr")).await;
        let entries = app.db.audit_entries_of(&lead.name).await;
        let request = update(&lead.name, &lead.etag, phone("+33 1 23 45 67 89"), pb::Company::default(), &["contact.phone"]);
        let answer = app.leads.clone().update_lead(request).await.unwrap().into_inner();
        assert_eq!(answer.etag, lead.etag);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries);
    }

    async fn bad_masks_are_refused_on_update_mask_naming_the_path(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("masks@acme-industrie.fr")).await;
        let entries = app.db.audit_entries().await;
        let cases: [(&[&str], &str); 7] = [
            (&[], "at least one field"),
            (&["contact.nickname"], "contact.nickname"),
            (&["state"], "\"state\" is output only"),
            (&["scores.fit_points"], "output only"),
            (&["etag"], "output only"),
            (&["*"], "`*`"),
            (&["source.channel"], "\"source.channel\" cannot be changed"),
        ];
        for (paths, said) in cases {
            let request = update(&lead.name, "", phone("+33 6 98 76 54 32"), pb::Company::default(), paths);
            let status = app.leads.clone().update_lead(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{paths:?}");
            assert_eq!(bad_fields(&status), ["update_mask"], "{paths:?}");
            assert!(status.message().contains(said), "{paths:?}: {}", status.message());
        }
        let status = app.leads.clone().update_lead(pb::UpdateLeadRequest::default()).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["update_mask", "lead"]);
        assert_eq!(app.db.audit_entries().await, entries, "nothing written");
    }

    async fn new_values_are_validated_as_on_submission_and_named_under_lead(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("values@acme-industrie.fr")).await;
        let contact = pb::Contact {
            email: "not-an-email".into(),
            phone: "call me".into(),
            // Not in the mask: not looked at.
            given_name: "x".repeat(500),
            ..Default::default()
        };
        let company = pb::Company { country_code: "France".into(), employee_count: -1, ..Default::default() };
        let request = update(&lead.name, "", contact, company,
            &["contact.email", "contact.phone", "company.country_code", "company.employee_count"]);
        let status = app.leads.clone().update_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, ["lead.company.country_code", "lead.company.employee_count", "lead.contact.email", "lead.contact.phone"]);
        // A masked email left empty is refused: every lead has one.
        let request = update(&lead.name, "", pb::Contact::default(), pb::Company::default(), &["contact.email"]);
        let status = app.leads.clone().update_lead(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["lead.contact.email"]);
        let request = update("leads/nope", "", phone("+33 6 98 76 54 32"), pb::Company::default(), &["contact.phone"]);
        let status = app.leads.clone().update_lead(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["lead.name"]);
    }

    async fn a_stale_etag_is_aborted(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("etag@acme-industrie.fr")).await;
        let first = update(&lead.name, &lead.etag, phone("+33 6 00 00 00 01"), pb::Company::default(), &["contact.phone"]);
        app.leads.clone().update_lead(first).await.unwrap();
        let stale = update(&lead.name, &lead.etag, phone("+33 6 00 00 00 02"), pb::Company::default(), &["contact.phone"]);
        let status = app.leads.clone().update_lead(stale).await.unwrap_err();
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(error_reason(&status), "ETAG_MISMATCH");
    }

    async fn a_request_id_replays_the_first_answer_and_refuses_another_request(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("replay@acme-industrie.fr")).await;
        let mut request = update(&lead.name, "", phone("+33 6 00 00 00 01"), pb::Company::default(), &["contact.phone"]);
        request.request_id = "fix-phone-1".into();
        let first = app.leads.clone().update_lead(request.clone()).await.unwrap().into_inner();
        let entries = app.db.audit_entries_of(&lead.name).await;
        let again = app.leads.clone().update_lead(request.clone()).await.unwrap().into_inner();
        assert_eq!(again, first);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries);
        request.lead.as_mut().unwrap().contact = Some(phone("+33 6 00 00 00 02"));
        let status = app.leads.clone().update_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "REQUEST_ID_REUSED");
    }

    async fn an_email_another_lead_has_is_refused_naming_the_field(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("one@acme-industrie.fr")).await;
        submitted(&app, minimal_submission("two@acme-industrie.fr")).await;
        let request = update(&lead.name, "", email(" Two@Acme-Industrie.FR "), pb::Company::default(), &["contact.email"]);
        let status = app.leads.clone().update_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(error_reason(&status), "EMAIL_TAKEN");
        assert_eq!(bad_fields(&status), ["lead.contact.email"]);
        let read = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(read.contact.unwrap().email, "one@acme-industrie.fr");
        assert_eq!(read.etag, lead.etag);
    }

    async fn a_corrected_email_is_the_one_a_resubmission_finds(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = submitted(&app, cfo_demo_request("old@acme-industrie.fr")).await;
        let request = update(&lead.name, "", email("New@Acme-Industrie.fr"), pb::Company::default(), &["contact.email"]);
        let updated = app.leads.clone().update_lead(request).await.unwrap().into_inner();
        assert_eq!(updated.contact.unwrap().email, "new@acme-industrie.fr");
        let again = app.leads.clone().submit_lead(minimal_submission("new@acme-industrie.fr")).await.unwrap().into_inner();
        assert!(!again.created);
        assert_eq!(again.lead.unwrap().name, lead.name);
        let old = app.leads.clone().submit_lead(minimal_submission("old@acme-industrie.fr")).await.unwrap().into_inner();
        assert!(old.created, "the old email is free again");
        let events = audit_events(&app, format!("lead = \"{}\" AND kind = LEAD_UPDATED", lead.name)).await;
        assert_eq!(inputs(&events[0]), serde_json::json!({ "fields": ["contact.email"], "email_domain": "acme-industrie.fr" }));
    }

    async fn a_resubmission_fills_only_empty_fields_by_default(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut first = minimal_submission("fill@acme-industrie.fr");
        first.company = Some(pb::Company { name: "Acme".into(), ..Default::default() });
        let lead = submitted(&app, first).await;
        let again = app.leads.clone().submit_lead(cfo_demo_request("fill@acme-industrie.fr")).await.unwrap().into_inner();
        assert!(!again.created);
        let lead_after = again.lead.unwrap();
        assert_eq!(lead_after.name, lead.name);
        assert_eq!(lead_after.contact.as_ref().unwrap().phone, "+33 1 23 45 67 89", "filled");
        assert_eq!(lead_after.company.as_ref().unwrap().name, "Acme", "kept");
        assert_eq!(lead_after.company.as_ref().unwrap().industry, "manufacturing", "filled");
        let events = audit_events(&app, format!("lead = \"{}\" AND kind = LEAD_RESUBMITTED", lead.name)).await;
        let fields = &inputs(&events[0])["profile"]["fields"];
        assert!(fields.as_array().unwrap().contains(&"contact.phone".into()), "{fields}");
        assert!(!fields.as_array().unwrap().contains(&"company.name".into()), "{fields}");
        assert!(!format!("{:?}", events[0]).contains("45 67"), "no phone in the entry");
    }

    async fn a_resubmission_replaces_what_it_gives_when_the_policy_lets_the_newest_win(backend: Backend) {
        let policy = policy_with(&[("profile = \"fill_empty\"", "profile = \"newest_wins\"")]);
        let app = spawn_app_with(&backend, Options { policy, ..Default::default() }).await;
        let mut first = cfo_demo_request("newest@acme-industrie.fr");
        first.company.as_mut().unwrap().name = "Acme".into();
        let lead = submitted(&app, first).await;
        let mut again = minimal_submission("newest@acme-industrie.fr");
        again.company = Some(pb::Company { name: "Acme Industrie SA".into(), ..Default::default() });
        let after = app.leads.clone().submit_lead(again).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(after.name, lead.name);
        assert_eq!(after.company.as_ref().unwrap().name, "Acme Industrie SA", "the newest wins");
        assert_eq!(after.contact.as_ref().unwrap().phone, "+33 1 23 45 67 89", "an empty value clears nothing");
        let events = audit_events(&app, format!("lead = \"{}\" AND kind = LEAD_RESUBMITTED", lead.name)).await;
        assert_eq!(inputs(&events[0])["profile"]["fields"], serde_json::json!(["company.name"]));
    }

    async fn the_store_refuses_an_email_taken_meanwhile_as_taken_and_writes_nothing(backend: Backend) {
        // The race the use case's check cannot see: the unique index answers, on both backends.
        use leadgate::domain::engine::{self, Command, Context, ProfileField, ProfileUpdate, ProfileValues};
        use leadgate::domain::values::{Email, LeadId};
        use leadgate::store::{LeadWrite, WriteOutcome};
        let app = spawn_app(&backend).await;
        let one = submitted(&app, minimal_submission("race-one@acme-industrie.fr")).await;
        submitted(&app, minimal_submission("race-two@acme-industrie.fr")).await;
        let store = app.db.store().await;
        let id = LeadId::parse_name(&one.name).unwrap();
        let lead = store.get_lead(id).await.unwrap().unwrap();
        let policy = leadgate::domain::policy::Policy::default_policy();
        let change_to = |email: &str| {
            let update = ProfileUpdate {
                fields: [ProfileField::ContactEmail].into(),
                values: ProfileValues { email: Some(Email::parse(email).unwrap()), ..Default::default() },
            };
            let ctx = Context { now: leadgate::app::now(), actor: "test", request_id: None, policy: &policy };
            let applied = engine::apply(&lead, Command::UpdateProfile(update), &ctx).unwrap();
            (applied.lead, test_audit_keys().seal_all(&applied.entries))
        };
        let (taken, entries) = change_to("race-two@acme-industrie.fr");
        let write = LeadWrite { lead: &taken, entries: &entries, idempotency: None, unless_suppressed: &[] };
        assert_eq!(store.update_lead(write, lead.revision).await.unwrap(), WriteOutcome::EmailTaken);
        let stored = store.get_lead(id).await.unwrap().unwrap();
        assert_eq!(stored, lead, "nothing written");
        // And the store still writes.
        let (free, entries) = change_to("race-three@acme-industrie.fr");
        let write = LeadWrite { lead: &free, entries: &entries, idempotency: None, unless_suppressed: &[] };
        assert_eq!(store.update_lead(write, lead.revision).await.unwrap(), WriteOutcome::Written);
        assert_eq!(store.find_lead_by_email(&free.profile.contact.email).await.unwrap().unwrap().id, id);
    }
}
