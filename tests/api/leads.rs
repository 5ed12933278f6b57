//! SubmitLead, GetLead, ListLeads.

use std::collections::HashSet;

use leadgate::grpc::pb;
use tonic::Code;

use crate::contract;
use crate::helpers::{bad_fields, cfo_demo_request, error_reason, minimal_submission, spawn_app};

fn lead_of(response: tonic::Response<pb::SubmitLeadResponse>) -> pb::Lead {
    response.into_inner().lead.expect("a lead")
}

contract! {
    async fn a_submission_creates_a_scored_lead_and_records_it(backend: Backend) {
        let app = spawn_app(&backend).await;
        let response = app.leads.clone().submit_lead(cfo_demo_request("  Claire.Martin@Acme-Industrie.FR ")).await.unwrap().into_inner();
        assert!(response.created);
        let lead = response.lead.unwrap();
        assert!(lead.name.starts_with("leads/"));
        assert_eq!(lead.contact.as_ref().unwrap().email, "claire.martin@acme-industrie.fr");
        // Fit 40 (grade A) + a fresh demo request (30) = 70 ≥ 50.
        let scores = lead.scores.unwrap();
        assert_eq!(scores.fit_grade, pb::FitGrade::A as i32);
        assert_eq!(scores.combined_points, 70.0);
        assert_eq!(lead.state, pb::LeadState::MarketingQualified as i32);
        let sla = lead.sla.unwrap();
        assert_eq!(sla.trigger, pb::SlaTrigger::DemoRequest as i32);
        assert_eq!(sla.state, pb::SlaState::OnTrack as i32);
        let decision = response.decision.unwrap();
        assert!(decision.state_changed);
        assert_eq!(decision.state_after, pb::LeadState::MarketingQualified as i32);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, 1);

        let read = app.leads.clone().get_lead(pb::GetLeadRequest { name: lead.name.clone() }).await.unwrap().into_inner();
        assert_eq!(read.name, lead.name);
        assert_eq!(read.etag, lead.etag);
        assert_eq!(read.state, lead.state);
    }

    async fn a_bad_submission_names_every_bad_field_and_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let request = pb::SubmitLeadRequest {
            contact: Some(pb::Contact {
                email: "not-an-email".into(),
                phone: "call me".into(),
                job_function: "Finance Dept".into(),
                given_name: "x".repeat(101),
                seniority: 42,
                ..Default::default()
            }),
            company: Some(pb::Company {
                employee_count: -3,
                country_code: "France".into(),
                domain: "not a domain".into(),
                ..Default::default()
            }),
            source: None,
            events: vec![pb::EngagementEvent { kind: 0, ..Default::default() }],
            request_id: "not valid!".into(),
            ..Default::default()
        };
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(error_reason(&status), "INVALID_ARGUMENT");
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(
            fields,
            [
                "company.country_code",
                "company.domain",
                "company.employee_count",
                "contact.email",
                "contact.given_name",
                "contact.job_function",
                "contact.phone",
                "contact.seniority",
                "events[0].kind",
                "request_id",
                "source.channel",
            ]
        );
        assert_eq!(app.db.leads().await, 0);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    }

    async fn an_event_in_the_future_is_rejected(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = minimal_submission("future@example.com");
        request.events.push(pb::EngagementEvent {
            kind: pb::EngagementKind::FormFill as i32,
            occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 }),
            subject: String::new(),
        });
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["events[0].occur_time"]);
        assert_eq!(app.db.leads().await, 0);
    }

    async fn a_known_email_returns_the_existing_lead_and_records_the_resubmission(backend: Backend) {
        let app = spawn_app(&backend).await;
        let first = lead_of(app.leads.clone().submit_lead(minimal_submission("Paul@Example.com")).await.unwrap());
        let mut again = minimal_submission(" paul@example.COM");
        again.source.as_mut().unwrap().channel = pb::SourceChannel::Webinar as i32;
        let response = app.leads.clone().submit_lead(again).await.unwrap().into_inner();
        assert!(!response.created);
        let second = response.lead.unwrap();
        assert_eq!(second.name, first.name);
        assert_ne!(second.etag, first.etag, "the resubmission changed the lead");
        assert!(second.scores.unwrap().engagement_points > first.scores.unwrap().engagement_points, "it counts as engagement");
        // The first source stays the lead's source.
        assert_eq!(second.source.unwrap().channel, pb::SourceChannel::Website as i32);
        assert_eq!(app.db.leads().await, 1);
        assert_eq!(app.db.audit_entries_of(&first.name).await, 2);
    }

    async fn the_same_request_id_and_body_replays_the_first_answer(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("replay@example.com");
        request.request_id = "0b6a4f8e-3f1e-4d7a-9c59-2f1f0c8d6a11".into();
        let first = app.leads.clone().submit_lead(request.clone()).await.unwrap().into_inner();
        let entries = app.db.audit_entries().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = app.leads.clone().submit_lead(request).await.unwrap().into_inner();
        assert_eq!(first, second, "the very same answer");
        assert!(second.created);
        assert_eq!(app.db.leads().await, 1);
        assert_eq!(app.db.audit_entries().await, entries, "nothing recorded twice");
    }

    async fn the_same_request_id_with_another_body_is_refused_and_writes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = minimal_submission("first@example.com");
        request.request_id = "req-42".into();
        app.leads.clone().submit_lead(request.clone()).await.unwrap();
        let entries = app.db.audit_entries().await;
        request.contact.as_mut().unwrap().email = "second@example.com".into();
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "REQUEST_ID_REUSED");
        assert_eq!(app.db.leads().await, 1);
        assert_eq!(app.db.audit_entries().await, entries);
    }

    async fn concurrent_identical_requests_create_one_lead_and_give_one_answer(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("race@example.com");
        request.request_id = "race-1".into();
        let answers = futures_join(20, |_| {
            let mut client = app.leads.clone();
            let request = request.clone();
            async move { client.submit_lead(request).await.map(|r| r.into_inner()) }
        })
        .await;
        let answers: Vec<_> = answers.into_iter().map(|a| a.expect("every retry succeeds")).collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "every answer is the first one");
        assert_eq!(app.db.leads().await, 1);
        assert_eq!(app.db.audit_entries().await, 2, "one submission and the policy activation");
    }

    async fn get_lead_tells_unknown_from_malformed(backend: Backend) {
        let app = spawn_app(&backend).await;
        let unknown = app.leads.clone().get_lead(pb::GetLeadRequest { name: "leads/0193f7a4-0000-7000-8000-000000000000".into() }).await.unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        assert_eq!(error_reason(&unknown), "NOT_FOUND");
        for malformed in ["", "leads/", "leads/xyz", "prospects/0193f7a4-0000-7000-8000-000000000000"] {
            let status = app.leads.clone().get_lead(pb::GetLeadRequest { name: malformed.into() }).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{malformed:?}");
            assert_eq!(bad_fields(&status), ["name"]);
        }
    }

    async fn list_filters_orders_and_pages(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut names = Vec::new();
        for i in 0..5 {
            let mut request = if i % 2 == 0 { cfo_demo_request(&format!("cfo{i}@example.com")) } else { minimal_submission(&format!("lead{i}@example.com")) };
            if i == 3 {
                request.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
            }
            names.push(lead_of(app.leads.clone().submit_lead(request).await.unwrap()).name);
        }
        let list = |filter: &str, order_by: &str, page_size: i32, page_token: String| {
            let mut client = app.leads.clone();
            let request = pb::ListLeadsRequest { filter: filter.into(), order_by: order_by.into(), page_size, page_token };
            async move { client.list_leads(request).await.map(|r| r.into_inner()) }
        };
        let all = list("", "", 0, String::new()).await.unwrap();
        assert_eq!(all.leads.iter().map(|l| l.name.clone()).collect::<Vec<_>>(), names, "creation order by default");
        assert!(all.next_page_token.is_empty());

        let desc = list("", "create_time desc", 0, String::new()).await.unwrap();
        let mut reversed = names.clone();
        reversed.reverse();
        assert_eq!(desc.leads.iter().map(|l| l.name.clone()).collect::<Vec<_>>(), reversed);

        let mql = list("state = MARKETING_QUALIFIED", "", 0, String::new()).await.unwrap();
        assert_eq!(mql.leads.len(), 3);
        let either = list("(source.channel = TRADE_SHOW OR state = LEAD_STATE_MARKETING_QUALIFIED) AND scores.combined_points >= 0", "", 0, String::new()).await.unwrap();
        assert_eq!(either.leads.len(), 4);
        let since = list(&format!("create_time >= \"{}\"", chrono::Utc::now().to_rfc3339()), "", 0, String::new()).await.unwrap();
        assert!(since.leads.is_empty());
        let best = list("", "scores.combined_points desc", 1, String::new()).await.unwrap();
        assert_eq!(best.leads[0].scores.as_ref().unwrap().combined_points, 70.0);

        let page1 = list("", "", 2, String::new()).await.unwrap();
        assert_eq!(page1.leads.len(), 2);
        assert!(!page1.next_page_token.is_empty());
        let page2 = list("", "", 2, page1.next_page_token.clone()).await.unwrap();
        assert_eq!(page2.leads[0].name, names[2]);

        let wrong_query = list("state = LEAD", "", 2, page1.next_page_token.clone()).await.unwrap_err();
        assert_eq!(bad_fields(&wrong_query), ["page_token"]);
        for (filter, order_by, size, token, field) in [
            ("", "", -1, "", "page_size"),
            ("state = PURPLE", "", 0, "", "filter"),
            ("state >= LEAD", "", 0, "", "filter"),
            ("(state = LEAD", "", 0, "", "filter"),
            ("", "email", 0, "", "order_by"),
            ("", "", 0, "bm90IGEgdG9rZW4", "page_token"),
        ] {
            let status = list(filter, order_by, size, token.into()).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{filter} {order_by} {size} {token}");
            assert_eq!(bad_fields(&status), [field]);
        }
        let capped = list("", "", 5000, String::new()).await.unwrap();
        assert_eq!(capped.leads.len(), 5);
    }

    async fn paging_while_leads_arrive_never_skips_or_repeats_a_lead(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut existing = HashSet::new();
        for i in 0..60 {
            existing.insert(lead_of(app.leads.clone().submit_lead(minimal_submission(&format!("before{i}@example.com"))).await.unwrap()).name);
        }
        let writer = {
            let mut client = app.leads.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    client.submit_lead(minimal_submission(&format!("during{i}@example.com"))).await.unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .leads
                .clone()
                .list_leads(pb::ListLeadsRequest { page_size: 7, page_token: token, ..Default::default() })
                .await
                .unwrap()
                .into_inner();
            seen.extend(page.leads.into_iter().map(|l| l.name));
            tokio::task::yield_now().await;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        writer.await.unwrap();
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "no lead is listed twice");
        assert!(existing.is_subset(&unique), "every lead that existed before listing is listed");
    }
}

/// Runs `n` futures at once and collects their results.
async fn futures_join<F, Fut, T>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut out = Vec::with_capacity(n);
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
