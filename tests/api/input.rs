//! Nothing a caller sends can hurt the server: text that the database cannot store, forged page
//! tokens, requests with hundreds of bad fields. Each is refused as the caller's mistake
//! (`INVALID_ARGUMENT`, the field named) and writes nothing.

use leadgate::grpc::pb;
use pb::audit_service_client::AuditServiceClient;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

fn audit(app: &TestApp) -> AuditServiceClient<tonic::transport::Channel> {
    AuditServiceClient::new(app.channel.clone())
}

/// A lead to change.
async fn a_lead(app: &TestApp, email: &str) -> pb::Lead {
    app.leads
        .clone()
        .submit_lead(cfo_demo_request(email))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
}

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

/// The same page token with other key values: what a caller who read the token's format can send.
fn with_key(token: &str, key: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut decoded: serde_json::Value = serde_json::from_slice(&b64.decode(token).unwrap()).unwrap();
    decoded["k"] = key;
    b64.encode(serde_json::to_vec(&decoded).unwrap())
}

/// An HTTP/2 body of exactly these bytes: what a broken or hostile client can send.
struct RawBody(Option<tonic::codegen::Bytes>);

impl http_body::Body for RawBody {
    type Data = tonic::codegen::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// A gRPC frame: not compressed, `length` announced, then `bytes`.
fn frame(length: usize, bytes: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(length as u32).to_be_bytes());
    framed.extend_from_slice(bytes);
    framed
}

/// Sends `body` as the HTTP/2 body of a call to `path` and returns the call's status, from the
/// headers (an error before any message) or the trailers.
async fn raw_call(app: &TestApp, path: &str, body: Vec<u8>) -> tonic::Status {
    use http_body::Body as _;
    use tonic::codegen::Service as _;
    let request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(RawBody(Some(body.into()))))
        .unwrap();
    let mut channel = app.channel.clone();
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await.unwrap();
    let response = channel.call(request).await.expect("an HTTP answer");
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame
            .expect("the answer ends with a status")
            .expect("a readable answer")
            .into_trailers()
        {
            Ok(trailers) => return tonic::Status::from_header_map(&trailers).expect("a status"),
            Err(_data) => continue,
        }
    }
}

contract! {
    async fn control_characters_in_single_line_fields_are_refused_by_name(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = cfo_demo_request("nul@acme.fr");
        let contact = request.contact.as_mut().unwrap();
        contact.given_name = "Cla\0ire".into();
        contact.family_name = "Martin\nBcc: everyone".into();
        contact.job_title = "CFO\u{1b}[31m".into();
        request.company.as_mut().unwrap().name = "Acme\0".into();
        request.source.as_mut().unwrap().campaign = "demo\tform".into();
        request.events[0].subject = "demo\rform".into();
        request.external_reference = "crm-1\0".into();
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(
            sorted(bad_fields(&status)),
            [
                "company.name",
                "contact.family_name",
                "contact.given_name",
                "contact.job_title",
                "events[0].subject",
                "external_reference",
                "source.campaign",
            ]
        );
        assert!(status.message().contains("control characters"), "{}", status.message());
        assert_eq!(app.db.leads().await, 0, "nothing written");
    }

    async fn free_text_keeps_line_feeds_and_tabs_but_refuses_nul(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = a_lead(&app, "evidence@acme.fr").await;
        let entries = app.db.audit_entries_of(&lead.name).await;

        let mut call = findings(
            pb::CriterionStatus::Met,
            pb::CriterionStatus::Unknown,
            pb::CriterionStatus::Unknown,
            pb::CriterionStatus::Unknown,
        );
        call.need.as_mut().unwrap().evidence = "invoicing by hand\n\t- 3 people full time".into();
        call.budget.as_mut().unwrap().evidence = "none\0yet".into();
        call.conducted_by = "rep-7\n".into(); // trailing white space is trimmed
        let refused = app
            .leads
            .clone()
            .record_discovery_call(pb::RecordDiscoveryCallRequest {
                name: lead.name.clone(),
                findings: Some(call.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&refused), ["findings.budget.evidence"]);

        call.budget.as_mut().unwrap().evidence = "none yet".into();
        call.conducted_by = "rep\n7".into();
        let refused = app
            .leads
            .clone()
            .record_discovery_call(pb::RecordDiscoveryCallRequest {
                name: lead.name.clone(),
                findings: Some(call.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&refused), ["findings.conducted_by"], "a name is one line");
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries, "nothing written");

        call.conducted_by = "rep-7".into();
        let recorded = app
            .leads
            .clone()
            .record_discovery_call(pb::RecordDiscoveryCallRequest {
                name: lead.name.clone(),
                findings: Some(call),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap();
        let need = recorded.bant.unwrap().need.unwrap();
        assert_eq!(need.evidence, "invoicing by hand\n\t- 3 people full time");
    }

    async fn reasons_references_and_agents_refuse_control_characters(backend: Backend) {
        let app = spawn_app(&backend).await;
        let lead = a_lead(&app, "reasons@acme.fr").await;
        let entries = app.db.audit_entries_of(&lead.name).await;
        let override_with = |reason: &str| pb::OverrideLeadStateRequest {
            name: lead.name.clone(),
            state: pb::LeadState::Disqualified as i32,
            disqualification_reason: pb::DisqualificationReason::NoBudget as i32,
            reason: reason.into(),
            ..Default::default()
        };
        let status = app.leads.clone().override_lead_state(override_with("budget\0next year")).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["reason"]);
        let status = app
            .leads
            .clone()
            .convert_lead(pb::ConvertLeadRequest {
                name: lead.name.clone(),
                opportunity_reference: "OPP-1\nOPP-2".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&status), ["opportunity_reference"]);
        let status = app
            .leads
            .clone()
            .record_contact_attempt(pb::RecordContactAttemptRequest {
                name: lead.name.clone(),
                attempt: Some(pb::ContactAttempt {
                    channel: pb::ContactChannel::Phone as i32,
                    outcome: pb::ContactOutcome::Connected as i32,
                    agent: "rep\u{7f}7".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&status), ["attempt.agent"]);
        assert_eq!(app.db.audit_entries_of(&lead.name).await, entries, "nothing written");

        app.leads
            .clone()
            .override_lead_state(override_with("budget next year:\n\tcall back in March"))
            .await
            .expect("a reason may span lines");
    }

    async fn a_text_filter_value_holding_nul_is_refused_up_front(backend: Backend) {
        let app = spawn_app(&backend).await;
        let status = audit(&app)
            .list_audit_events(pb::ListAuditEventsRequest {
                filter: "actor = \"a\0b\"".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(bad_fields(&status), ["filter"]);
        assert!(status.message().contains("actor must not contain control characters"), "{}", status.message());

        let status = audit(&app)
            .watch_decisions(pb::WatchDecisionsRequest {
                filter: "policy_version = \"v\0\"".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "the stream never starts: {status:?}");
        assert_eq!(bad_fields(&status), ["filter"]);
    }

    async fn a_page_token_with_key_values_of_the_wrong_types_is_refused(backend: Backend) {
        let app = spawn_app(&backend).await;
        for i in 0..3 {
            app.leads.clone().submit_lead(minimal_submission(&format!("page{i}@acme.fr"))).await.unwrap();
        }
        app.db.wait_until_chained().await;
        let list_leads = |page_token: String| pb::ListLeadsRequest { page_size: 1, page_token, ..Default::default() };
        let token = app.leads.clone().list_leads(list_leads(String::new())).await.unwrap().into_inner().next_page_token;
        let uuid = serde_json::json!({ "Uuid": "0193f7a4-0000-7000-8000-000000000000" });
        for key in [
            serde_json::json!([{ "Text": "2026-01-01" }, uuid]),
            serde_json::json!([{ "Int": 1 }, { "Text": "x" }]),
            serde_json::json!([{ "Int": 1 }, { "Int": 2 }]),
            serde_json::json!([uuid, uuid]),
        ] {
            let status = app.leads.clone().list_leads(list_leads(with_key(&token, key.clone()))).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{key}: {status:?}");
            assert_eq!(bad_fields(&status), ["page_token"], "{key}");
        }

        let list_events = |page_token: String| pb::ListAuditEventsRequest { page_size: 1, page_token, ..Default::default() };
        let token = audit(&app).list_audit_events(list_events(String::new())).await.unwrap().into_inner().next_page_token;
        for key in [serde_json::json!([{ "Text": "1" }]), serde_json::json!([uuid])] {
            let status = audit(&app).list_audit_events(list_events(with_key(&token, key.clone()))).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{key}: {status:?}");
            assert_eq!(bad_fields(&status), ["page_token"], "{key}");
        }
        // The server's own tokens still work.
        let next = audit(&app).list_audit_events(list_events(token)).await.unwrap().into_inner();
        assert_eq!(next.audit_events[0].position, 2);

        use pb::policy_service_client::PolicyServiceClient;
        let policies = PolicyServiceClient::new(app.channel.clone());
        let first = policies
            .clone()
            .list_policies(pb::ListPoliciesRequest { page_size: 1, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        // One policy, so no token to start from: forge one with the fingerprint of the default
        // order, as a caller who read the format could.
        assert!(first.next_page_token.is_empty());
        let fingerprint = {
            use sha2::Digest;
            let digest = sha2::Sha256::new().chain_update("").chain_update([0]).chain_update("activate_time desc").finalize();
            leadgate::domain::hex::to_hex(&digest[..8])
        };
        for key in [
            serde_json::json!([{ "Int": 1 }, { "Int": 2 }]),
            serde_json::json!([{ "Int": 1 }, { "Text": "v\u{0}" }]),
        ] {
            use base64::Engine;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::json!({ "q": fingerprint, "k": key }).to_string());
            let status = policies
                .clone()
                .list_policies(pb::ListPoliciesRequest { page_size: 1, page_token: token, ..Default::default() })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{key}: {status:?}");
            assert_eq!(bad_fields(&status), ["page_token"], "{key}");
        }
    }

    async fn hundreds_of_bad_fields_come_back_in_an_answer_a_default_client_can_read(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut request = minimal_submission("many-mistakes@acme.fr");
        request.events = (0..100)
            .map(|_| pb::EngagementEvent {
                kind: 99,
                occur_time: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }),
                subject: format!("{}\0", "s".repeat(150)),
            })
            .collect();
        let status = app.leads.clone().submit_lead(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{:?}: {}", status.code(), status.message());
        use tonic_types::StatusExt;
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.metadata["violations"], "300");
        let listed = status.get_details_bad_request().expect("BadRequest").field_violations;
        assert_eq!(info.metadata["violations_listed"], listed.len().to_string());
        assert!(!listed.is_empty() && listed.len() < 300, "{} listed", listed.len());
        assert_eq!(listed[0].field, "events[0].kind", "the first ones, in order");
        assert!(status.message().contains("300 violations"), "{}", status.message());
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
        assert!(header_bytes < 8 * 1024, "{header_bytes} bytes of headers");
        assert_eq!(app.db.leads().await, 0);
    }

    async fn an_email_with_the_trailing_dot_of_a_full_domain_name_is_the_same_lead(backend: Backend) {
        let app = spawn_app(&backend).await;
        let first = a_lead(&app, "claire@acme.fr").await;
        for spelling in ["claire@acme.fr.", "Claire@ACME.FR."] {
            let again = app.leads.clone().submit_lead(minimal_submission(spelling)).await.unwrap().into_inner();
            assert!(!again.created, "{spelling}: one mailbox is one lead");
            let lead = again.lead.unwrap();
            assert_eq!(lead.name, first.name, "{spelling}");
            assert_eq!(lead.contact.unwrap().email, "claire@acme.fr");
        }
        let status = app.leads.clone().submit_lead(minimal_submission("claire@acme.fr..")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "an empty label is no domain: {status:?}");
        assert_eq!(bad_fields(&status), ["contact.email"]);
        assert_eq!(app.db.leads().await, 1);
    }

    async fn a_country_code_must_be_an_officially_assigned_one(backend: Backend) {
        let app = spawn_app(&backend).await;
        for code in ["zz", "UK", "EU", "XA"] {
            let mut request = cfo_demo_request("country@acme.fr");
            request.company.as_mut().unwrap().country_code = code.into();
            let status = app.leads.clone().submit_lead(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{code}: {status:?}");
            assert_eq!(bad_fields(&status), ["company.country_code"], "{code}");
        }
        assert_eq!(app.db.leads().await, 0);
        let mut request = cfo_demo_request("country@acme.fr");
        request.company.as_mut().unwrap().country_code = "fr".into();
        let lead = app.leads.clone().submit_lead(request).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(lead.company.unwrap().country_code, "FR");
    }

    async fn a_request_that_is_not_valid_protobuf_is_the_caller_s_mistake_on_every_method(backend: Backend) {
        use prost::Message;
        let app = spawn_app(&backend).await;
        let submission = cfo_demo_request("malformed@acme.fr").encode_to_vec();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("random bytes", frame(16, &[0xff, 0x13, 0x37, 0xc4, 0x9e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])),
            ("a truncated message", frame(submission.len() / 2, &submission[..submission.len() / 2])),
            ("invalid UTF-8 in a string field", frame(4, &[0x0a, 0x02, 0xff, 0xfe])),
            ("a frame cut short", frame(100, &[0x0a, 0x03])),
            ("an empty body", Vec::new()),
            ("a compression flag that means nothing", { let mut f = frame(0, &[]); f[0] = 7; f }),
        ];
        for path in [
            "/leadgate.v1.LeadService/SubmitLead",
            "/leadgate.v1.LeadService/GetLead",
            "/leadgate.v1.LeadService/RecordEngagement",
            "/leadgate.v1.AuditService/ListAuditEvents",
            "/leadgate.v1.AuditService/WatchDecisions",
            "/leadgate.v1.PolicyService/SimulatePolicy",
            "/leadgate.v1.ReportService/GetFunnelReport",
            "/grpc.health.v1.Health/Check",
        ] {
            for (case, body) in &cases {
                let status = raw_call(&app, path, body.clone()).await;
                assert_eq!(status.code(), Code::InvalidArgument, "{case} to {path}: {status:?}");
                assert_eq!(error_reason(&status), "MALFORMED_REQUEST", "{case} to {path}");
                assert!(status.message().starts_with("the request is not a valid protobuf message"), "{case} to {path}: {}", status.message());
            }
        }
        assert_eq!(app.db.leads().await, 0, "nothing written");
        assert_eq!(app.db.audit_entries().await, 1, "only the policy activation");

        // The same path with a valid message is answered.
        let valid = raw_call(&app, "/leadgate.v1.LeadService/SubmitLead", frame(submission.len(), &submission)).await;
        assert_eq!(valid.code(), Code::Ok, "{valid:?}");
        assert_eq!(app.db.leads().await, 1);
    }
}
