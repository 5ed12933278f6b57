//! Erasure (EraseLead and the retention sweep), the suppression list, and ExportLeadData: the
//! person's data leaves every table leadgate keeps, the lead stays as a pseudonymous record, and
//! the audit chain still verifies.

use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

/// What the CFO's submission says that identifies her.
const PERSONAL: [&str; 5] = [
    "claire.martin@acme-industrie.fr",
    "Claire",
    "Martin",
    "+33 1 23 45 67 89",
    "Directrice",
];

fn erase(name: &str, request_id: &str) -> pb::EraseLeadRequest {
    pb::EraseLeadRequest {
        name: name.into(),
        reason: "data subject request DSR-7".into(),
        request_id: request_id.into(),
    }
}

/// Rows of every table leadgate writes that hold `text`, by table.
async fn rows_holding(db: &TestDatabase, text: &str) -> Vec<(&'static str, i64)> {
    let pattern = text.replace('\'', "''");
    let mut found = Vec::new();
    for (table, columns) in [
        ("leads", "email || document || external_reference"),
        ("idempotency_keys", "response"),
        ("audit_inbox", "body"),
        ("audit_log", "body"),
    ] {
        let n = db
            .count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE {columns} LIKE '%{pattern}%'"
            ))
            .await;
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}

/// Whether the lead's row holds neither `text` nor its email, and has its pseudonymous email.
async fn row_is_pseudonymous(db: &TestDatabase, id: uuid::Uuid, text: &str) -> bool {
    let n = db
        .count(&format!(
            "SELECT COUNT(*) FROM leads WHERE email = '{}@erased.invalid' AND external_reference = '' \
             AND document NOT LIKE '%{text}%' AND erase_time IS NOT NULL",
            id.simple()
        ))
        .await;
    n == 1
}

/// The inputs of a lead's audit entries as ListAuditEvents answers them, as one text.
async fn audit_texts(app: &TestApp, name: &str) -> String {
    app.db.wait_until_chained().await;
    let request = pb::ListAuditEventsRequest {
        filter: format!("lead = \"{name}\""),
        page_size: 100,
        ..Default::default()
    };
    let events = AuditServiceClient::new(app.channel.clone())
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    events
        .iter()
        .map(|e| format!("{:?}", e.inputs))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn verified(app: &TestApp) -> pb::VerifyAuditTrailResponse {
    app.db.wait_until_chained().await;
    AuditServiceClient::new(app.channel.clone())
        .verify_audit_trail(pb::VerifyAuditTrailRequest::default())
        .await
        .unwrap()
        .into_inner()
}

contract! {
    async fn an_erased_lead_keeps_no_personal_data_anywhere_and_the_chain_still_verifies(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut leads = app.leads.clone();
        let mut request = cfo_demo_request("claire.martin@acme-industrie.fr");
        request.external_reference = "crm-4711".into();
        request.request_id = "form-1".into();
        let lead = leads.submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        // A second submission, kept as a resubmission's answer too.
        let mut again = cfo_demo_request("claire.martin@acme-industrie.fr");
        again.request_id = "form-2".into();
        leads.submit_lead(again).await.unwrap();
        let call = pb::RecordDiscoveryCallRequest {
            name: lead.name.clone(),
            findings: Some(pb::DiscoveryCallFindings {
                budget: Some(pb::BudgetFinding {
                    status: pb::CriterionStatus::Met as i32,
                    evidence: "budget signed off by Claire".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: "call-1".into(),
            ..Default::default()
        };
        let lead = leads.record_discovery_call(call).await.unwrap().into_inner().lead.unwrap();
        for text in PERSONAL {
            assert!(!rows_holding(&app.db, text).await.is_empty(), "{text} is stored before");
        }
        // Free text is stored sealed in the trail, and read back in the clear.
        assert_eq!(rows_holding(&app.db, "demo form").await.iter().filter(|(t, _)| t.starts_with("audit")).count(), 0);
        let trail = audit_texts(&app, &lead.name).await;
        assert!(trail.contains("demo form") && trail.contains("crm-4711"), "{trail}");

        let answer = leads.erase_lead(erase(&lead.name, "dsr-7")).await.unwrap().into_inner();
        assert!(answer.erased);
        let erased = answer.lead.unwrap();
        assert!(erased.erase_time.is_some());
        let contact = erased.contact.clone().unwrap();
        assert!(contact.email.ends_with("@erased.invalid"), "{}", contact.email);
        assert_eq!((contact.given_name.as_str(), contact.family_name.as_str(), contact.phone.as_str()), ("", "", ""));
        assert_eq!(erased.external_reference, "");
        // The pseudonymous record keeps what the reports read.
        assert_eq!(erased.state, lead.state);
        assert_eq!(erased.scores, lead.scores);
        assert_eq!(erased.company.unwrap().domain, "acme-industrie.fr");

        for text in PERSONAL {
            assert_eq!(rows_holding(&app.db, text).await, vec![], "{text} is gone");
        }
        // The CRM reference and free text are gone too: from the lead and the kept answers, and
        // from the audit entries, which hold them sealed under the lead's destroyed key.
        let id = lead_uuid(&lead.name);
        for text in ["crm-4711", "demo form", "budget signed off by Claire"] {
            assert_eq!(rows_holding(&app.db, text).await, vec![], "{text} is gone");
            assert!(row_is_pseudonymous(&app.db, id, text).await, "{text}");
        }
        let trail = audit_texts(&app, &lead.name).await;
        assert!(!trail.contains("Claire") && !trail.contains("demo form"), "{trail}");
        assert!(trail.contains("[erased]"), "{trail}");
        assert_eq!(app.db.entries_of_kind("LEAD_ERASED").await, 1);
        let read = leads
            .get_lead(pb::GetLeadRequest { name: lead.name.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.contact, erased.contact);
        let verification = verified(&app).await;
        assert!(verification.ok && verification.complete, "{verification:?}");
    }

    async fn erasing_twice_is_harmless_and_an_erased_lead_takes_no_more_changes(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut leads = app.leads.clone();
        let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        let first = leads.erase_lead(erase(&lead.name, "")).await.unwrap().into_inner();
        let second = leads.erase_lead(erase(&lead.name, "")).await.unwrap().into_inner();
        assert!(first.erased);
        assert!(!second.erased, "nothing to erase the second time");
        assert_eq!(second.lead, first.lead);
        assert_eq!(app.db.entries_of_kind("LEAD_ERASED").await, 1);

        // A retry under the same request id answers the first erasure.
        let retried = leads.erase_lead(erase(&lead.name, "dsr-9")).await.unwrap().into_inner();
        let replayed = leads.erase_lead(erase(&lead.name, "dsr-9")).await.unwrap().into_inner();
        assert_eq!(retried, replayed);

        let engagement = pb::RecordEngagementRequest {
            name: lead.name.clone(),
            events: vec![engagement(pb::EngagementKind::WebinarAttended, None)],
            ..Default::default()
        };
        let refused = leads.record_engagement(engagement).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&refused), "LEAD_ERASED");
        assert_eq!(app.db.entries_of_kind("ENGAGEMENT_RECORDED").await, 0);
    }

    async fn an_erased_email_is_refused_by_default_and_accepted_as_a_new_consent_when_the_policy_says(backend: Backend) {
        let db = std::sync::Arc::new(TestDatabase::create(&backend).await);
        let app = spawn_on(db.clone(), Options::default()).await;
        app.wait_until_serving().await;
        let mut leads = app.leads.clone();
        let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        leads.erase_lead(erase(&lead.name, "")).await.unwrap();

        // Any spelling of the address is the same person.
        let refused = leads
            .submit_lead(minimal_submission("Claire.Martin@ACME-industrie.fr"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&refused), "EMAIL_SUPPRESSED");
        assert_eq!(db.leads().await, 1, "nothing written");
        // Other people are not affected.
        submitted(&app, minimal_submission("someone.else@acme-industrie.fr")).await;
        drop(app);

        let accepting = policy_with(&[(r#"erased_email = "refuse""#, r#"erased_email = "accept""#)]);
        let app = spawn_on(db.clone(), Options { policy: accepting, ..Options::default() }).await;
        app.wait_until_serving().await;
        let back = app
            .leads
            .clone()
            .submit_lead(minimal_submission("claire.martin@acme-industrie.fr"))
            .await
            .unwrap()
            .into_inner();
        assert!(back.created, "a new lead, not the erased one");
        let back = back.lead.unwrap();
        assert_ne!(back.name, lead.name);
        let bodies = db.audit_bodies_of(&back.name).await;
        assert_eq!(bodies[0].2["inputs"]["after_erasure"], true, "{bodies:?}");
    }

    async fn an_export_holds_the_lead_and_its_history_and_only_the_privacy_role_may_erase(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut leads = app.leads.clone();
        let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        app.db.wait_until_chained().await;
        let by_email = leads
            .export_lead_data(pb::ExportLeadDataRequest {
                email: "CLAIRE.martin@acme-industrie.fr".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_email.lead, lead.name);
        assert_eq!(by_email.content_type, "application/json");
        let export: serde_json::Value = serde_json::from_str(&by_email.data).unwrap();
        assert_eq!(export["lead"]["profile"]["contact"]["given_name"], "Claire");
        let history = export["history"].as_array().unwrap();
        assert_eq!(history[0]["kind"], "LEAD_SUBMITTED");
        assert!(history[0]["hash"].as_str().unwrap().len() == 64);

        let both = leads
            .export_lead_data(pb::ExportLeadDataRequest {
                name: lead.name.clone(),
                email: "claire.martin@acme-industrie.fr".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&both), ["email"]);
        let unknown = leads
            .export_lead_data(pb::ExportLeadDataRequest {
                email: "nobody@acme-industrie.fr".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        let no_reason = leads
            .erase_lead(pb::EraseLeadRequest { name: lead.name.clone(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&no_reason), ["reason"]);
        assert_eq!(app.db.entries_of_kind("LEAD_ERASED").await, 0);

        for rpc in ["EraseLead", "ExportLeadData"] {
            let path = format!("/leadgate.v1.LeadService/{rpc}");
            let (_, allowed) = leadgate::auth::RPC_ROLES.iter().find(|(p, _)| *p == path).unwrap();
            assert_eq!(*allowed, [leadgate::auth::Role::Privacy], "{rpc}");
        }
    }

    async fn the_retention_sweep_erases_leads_unchanged_for_the_policys_months_and_only_those(backend: Backend) {
        let db = std::sync::Arc::new(TestDatabase::create(&backend).await);
        let app = spawn_on(db.clone(), Options::default()).await;
        app.wait_until_serving().await;
        let old = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        let recent = submitted(&app, minimal_submission("recent@acme-industrie.fr")).await;
        drop(app);
        // The old lead was last changed three years ago.
        let long_ago = chrono::Utc::now() - chrono::Duration::days(3 * 365);
        let id = lead_uuid(&old.name);
        let (document, key) = if db.is_sqlite() {
            (format!("json_set(document, '$.updated_at', '{}')", long_ago.to_rfc3339()), format!("X'{}'", id.simple()))
        } else {
            (format!("jsonb_set(document::jsonb, '{{updated_at}}', '\"{}\"')::text", long_ago.to_rfc3339()), format!("'{id}'::uuid"))
        };
        db.try_execute(&format!(
            "UPDATE leads SET update_time = {}, document = {document} WHERE id = {key}",
            long_ago.timestamp_micros()
        ))
        .await
        .unwrap();

        let retention = policy_with(&[("erase_inactive_after_months = 0", "erase_inactive_after_months = 24")]);
        let app = spawn_on(db.clone(), Options { policy: retention, ..Options::default() }).await;
        app.wait_until_serving().await;
        let erased = eventually(std::time::Duration::from_secs(10), || async {
            db.entries_of_kind("LEAD_ERASED").await == 1
        })
        .await;
        assert!(erased, "the sweep erased the old lead");
        let mut leads = app.leads.clone();
        let read = |name: String| {
            let mut leads = leads.clone();
            async move { leads.get_lead(pb::GetLeadRequest { name }).await.unwrap().into_inner() }
        };
        assert!(read(old.name.clone()).await.erase_time.is_some());
        assert!(read(recent.name.clone()).await.erase_time.is_none());
        let bodies = db.audit_bodies_of(&old.name).await;
        let (kind, _, body) = bodies.last().unwrap();
        assert_eq!(kind, "LEAD_ERASED");
        // One statement: an entry moving from the inbox to the log is counted once.
        let by_engine = db
            .count(
                "SELECT (SELECT COUNT(*) FROM audit_log WHERE kind = 'LEAD_ERASED' AND actor = 'engine') \
                 + (SELECT COUNT(*) FROM audit_inbox WHERE kind = 'LEAD_ERASED' AND actor = 'engine')",
            )
            .await;
        assert_eq!(by_engine, 1);
        assert_eq!(body["inputs"]["reason"], "retention: unchanged for 24 months");
        // Later passes find nothing more to do.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(db.entries_of_kind("LEAD_ERASED").await, 1);
        let _ = leads.get_lead(pb::GetLeadRequest { name: recent.name }).await.unwrap();
    }

    async fn erasing_a_merged_person_erases_every_lead_merged_into_theirs_and_merges_refuse_erased_leads(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut leads = app.leads.clone();
        let winner = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        let mut private = cfo_demo_request("claire.martin@gmail.com");
        private.contact.as_mut().unwrap().phone = "+33 6 11 22 33 44".into();
        let loser = submitted(&app, private).await;
        let merge = |winner: &str, loser: &str| pb::MergeLeadsRequest {
            winner: winner.into(),
            loser: loser.into(),
            ..Default::default()
        };
        leads.merge_leads(merge(&winner.name, &loser.name)).await.unwrap();
        app.db.wait_until_chained().await;

        // The export by the duplicate's email is the person's: both leads, each with its history.
        let export = leads
            .export_lead_data(pb::ExportLeadDataRequest { email: "claire.martin@gmail.com".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(export.lead, winner.name);
        let export: serde_json::Value = serde_json::from_str(&export.data).unwrap();
        assert_eq!(export["merged_leads"][0]["lead"]["id"], lead_uuid(&loser.name).to_string());
        assert_eq!(export["merged_leads"][0]["history"][0]["kind"], "LEAD_SUBMITTED");

        // Erasing by the duplicate's name erases the person: both records.
        let answer = leads.erase_lead(erase(&loser.name, "")).await.unwrap().into_inner();
        assert!(answer.erased);
        assert_eq!(answer.lead.unwrap().name, winner.name);
        assert_eq!(app.db.entries_of_kind("LEAD_ERASED").await, 2);
        for text in ["claire.martin@gmail.com", "+33 6 11 22 33 44"].into_iter().chain(PERSONAL) {
            assert_eq!(rows_holding(&app.db, text).await, vec![], "{text} is gone");
        }
        for email in ["claire.martin@gmail.com", "claire.martin@acme-industrie.fr"] {
            let refused = leads.submit_lead(minimal_submission(email)).await.unwrap_err();
            assert_eq!(error_reason(&refused), "EMAIL_SUPPRESSED", "{email}");
        }

        // An erased lead is merged with nothing.
        let other = submitted(&app, minimal_submission("someone@acme-industrie.fr")).await;
        for (w, l) in [(&other.name, &winner.name), (&winner.name, &other.name)] {
            let refused = leads.merge_leads(merge(w, l)).await.unwrap_err();
            assert_eq!(error_reason(&refused), "LEAD_ERASED");
        }
        let verification = verified(&app).await;
        assert!(verification.ok && verification.complete, "{verification:?}");
    }

    async fn an_import_brings_no_erased_person_back_and_resubmits_a_merged_email_on_its_winner(backend: Backend) {
        use pb::import_lead_result::Outcome;
        let app = spawn_app(&backend).await;
        let mut leads = app.leads.clone();
        let erased = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
        leads.erase_lead(erase(&erased.name, "")).await.unwrap();
        let winner = submitted(&app, minimal_submission("paul@acme-industrie.fr")).await;
        let loser = submitted(&app, minimal_submission("paul.private@gmail.com")).await;
        let merge = pb::MergeLeadsRequest { winner: winner.name.clone(), loser: loser.name.clone(), ..Default::default() };
        leads.merge_leads(merge).await.unwrap();

        let rows = vec![
            minimal_submission("Claire.Martin@acme-industrie.fr"),
            minimal_submission("paul.private@gmail.com"),
            minimal_submission("new@acme-industrie.fr"),
        ];
        let answer = crate::import::imported(&app, crate::import::import("fair", rows)).await;
        let outcomes = crate::import::outcomes(&answer);
        assert_eq!(outcomes, [Outcome::Refused, Outcome::Deduplicated, Outcome::Created]);
        assert_eq!(answer.results[0].violations[0].field, "contact.email");
        assert!(answer.results[0].violations[0].description.contains("EMAIL_SUPPRESSED"));
        assert_eq!(answer.results[1].lead, winner.name, "the merged email resubmits its winner");
        assert_eq!(app.db.leads().await, 4, "nothing brought back");
    }
}
