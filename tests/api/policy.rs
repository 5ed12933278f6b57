//! PolicyService: read, validate, simulate.

use leadgate::domain::policy::{DEFAULT_POLICY, Policy};
use leadgate::grpc::pb;
use pb::policy_service_client::PolicyServiceClient;
use tonic::Code;

use crate::contract;
use crate::helpers::*;

contract! {
    async fn the_active_policy_and_every_version_are_kept(backend: Backend) {
        let mut first = spawn_app(&backend).await;
        let mut client = PolicyServiceClient::new(first.channel.clone());
        let active = client.get_policy(pb::GetPolicyRequest { name: "policies/active".into() }).await.unwrap().into_inner();
        let default = Policy::default_policy();
        assert_eq!(active.version, default.version);
        assert_eq!(active.content, DEFAULT_POLICY);
        assert!(active.active);
        first.stop().await.unwrap();

        // A new version deployed on the same database.
        let stricter = policy_with(&[("marketing_qualified = 50", "marketing_qualified = 60")]);
        let options = Options { policy: stricter.clone(), ..Options::default() };
        let second = spawn_on(first.db.clone(), options).await;
        second.wait_until_serving().await;
        let mut client = PolicyServiceClient::new(second.channel.clone());
        let list = client.list_policies(pb::ListPoliciesRequest::default()).await.unwrap().into_inner();
        let versions: Vec<_> = list.policies.iter().map(|p| (p.version.clone(), p.active)).collect();
        assert_eq!(versions, [(stricter.version.clone(), true), (default.version.clone(), false)], "newest first");
        let old = client.get_policy(pb::GetPolicyRequest { name: format!("policies/{}", default.version) }).await.unwrap().into_inner();
        assert_eq!(old.content, DEFAULT_POLICY, "old versions stay readable");
        assert_eq!(second.db.entries_of_kind("POLICY_ACTIVATED").await, 2);

        let page = client.list_policies(pb::ListPoliciesRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(page.policies.len(), 1);
        let next = client.list_policies(pb::ListPoliciesRequest { page_size: 1, page_token: page.next_page_token, ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(next.policies[0].version, default.version);

        let unknown = client.get_policy(pb::GetPolicyRequest { name: "policies/0123456789abcdef".into() }).await.unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        let malformed = client.get_policy(pb::GetPolicyRequest { name: "policy/1".into() }).await.unwrap_err();
        assert_eq!(bad_fields(&malformed), ["name"]);
    }

    async fn validate_policy_reports_every_problem_with_its_key_and_line(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut client = PolicyServiceClient::new(app.channel.clone());
        let ok = client.validate_policy(pb::ValidatePolicyRequest { content: DEFAULT_POLICY.into() }).await.unwrap().into_inner();
        assert!(ok.valid);
        assert_eq!(ok.version, Policy::default_policy().version);

        let bad = DEFAULT_POLICY.replace("bant_required = 4", "bant_required = 7").replace("\"5m\"", "\"soon\"");
        let answer = client.validate_policy(pb::ValidatePolicyRequest { content: bad.clone() }).await.unwrap().into_inner();
        assert!(!answer.valid);
        let keys: Vec<_> = answer.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["qualification.bant_required", "sla.demo_request_first_touch"]);
        let line = bad.lines().position(|l| l.contains("bant_required = 7")).unwrap() as i32 + 1;
        assert_eq!(answer.problems[0].line, line);

        let empty = client.validate_policy(pb::ValidatePolicyRequest { content: " ".into() }).await.unwrap_err();
        assert_eq!(bad_fields(&empty), ["content"]);

        // The resubmission rule: one of three names, and a rule of its own is a version of its own.
        let latest = DEFAULT_POLICY.replace("profile = \"fill_empty\"", "profile = \"latest\"");
        let answer = client.validate_policy(pb::ValidatePolicyRequest { content: latest }).await.unwrap().into_inner();
        assert!(!answer.valid);
        assert_eq!(answer.problems[0].key, "resubmission.profile");
        let newest = DEFAULT_POLICY.replace("profile = \"fill_empty\"", "profile = \"newest_wins\"");
        let answer = client.validate_policy(pb::ValidatePolicyRequest { content: newest }).await.unwrap().into_inner();
        assert!(answer.valid);
        assert_ne!(answer.version, Policy::default_policy().version);
    }

    async fn simulate_policy_reports_what_would_change_and_changes_nothing(backend: Backend) {
        let app = spawn_app(&backend).await;
        // A law firm (nurtured: outside the profile) and a lead at 45 points.
        let mut firm = cfo_demo_request("firm@cabinet.fr");
        firm.company.as_mut().unwrap().industry = "legal_services".into();
        let firm = app.leads.clone().submit_lead(firm).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(firm.state, pb::LeadState::Nurturing as i32);
        let mut warm = cfo_demo_request("warm@acme.fr");
        warm.events = vec![engagement(pb::EngagementKind::WebinarRegistered, None)];
        let warm = app.leads.clone().submit_lead(warm).await.unwrap().into_inner().lead.unwrap();
        assert_eq!(warm.state, pb::LeadState::Lead as i32);
        let hot = app.leads.clone().submit_lead(cfo_demo_request("hot@acme.fr")).await.unwrap().into_inner().lead.unwrap();
        let entries = app.db.audit_entries().await;

        let candidate = DEFAULT_POLICY
            .replace("marketing_qualified = 50", "marketing_qualified = 40")
            .replace("on_poor_fit = \"nurture\"", "on_poor_fit = \"disqualify\"");
        let mut client = PolicyServiceClient::new(app.channel.clone());
        let sim = client.simulate_policy(pb::SimulatePolicyRequest { content: candidate.clone(), ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(sim.leads_evaluated, 3);
        assert_eq!(sim.leads_changed, 2);
        let moves: Vec<_> = sim.transitions.iter().map(|t| (t.from_state, t.to_state, t.leads)).collect();
        use pb::LeadState as S;
        assert!(moves.contains(&(S::Lead as i32, S::MarketingQualified as i32, 1)), "{moves:?}");
        assert!(moves.contains(&(S::Nurturing as i32, S::Disqualified as i32, 1)), "{moves:?}");
        assert!(moves.contains(&(S::MarketingQualified as i32, S::MarketingQualified as i32, 1)), "{moves:?}");
        let sampled: Vec<_> = sim.samples.iter().map(|s| s.lead.clone()).collect();
        assert!(sampled.contains(&firm.name) && sampled.contains(&warm.name) && !sampled.contains(&hot.name));

        let only_website = client
            .simulate_policy(pb::SimulatePolicyRequest { content: candidate, filter: "state = LEAD".into(), sample_size: 1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((only_website.leads_evaluated, only_website.samples.len()), (1, 1));

        assert_eq!(app.db.audit_entries().await, entries, "a simulation writes nothing");
        let still = app.leads.clone().get_lead(pb::GetLeadRequest { name: warm.name.clone() }).await.unwrap().into_inner();
        assert_eq!(still.etag, warm.etag);

        let invalid = client
            .simulate_policy(pb::SimulatePolicyRequest { content: "thresholds = 3".into(), filter: "colour = red".into(), sample_size: -1 })
            .await
            .unwrap_err();
        let mut fields = bad_fields(&invalid);
        fields.dedup();
        assert_eq!(fields, ["content", "filter", "sample_size"]);
    }
}
