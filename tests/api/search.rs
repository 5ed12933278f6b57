//! Finding leads: ListLeads filtered by email, company, campaign and external reference, with
//! NOT, OR across fields and `:`.

use std::collections::BTreeSet;

use leadgate::grpc::pb;
use tonic::Code;

use crate::contract;
use leadgate::domain::policy::DEFAULT_POLICY;
use pb::policy_service_client::PolicyServiceClient;

use crate::helpers::{
    Options, TestApp, bad_fields, cfo_demo_request, engagement, minimal_submission, spawn_app, spawn_on,
    submitted,
};

/// A fit lead at a company, from a campaign, with a CRM reference.
fn at_company(
    email: &str,
    name: &str,
    domain: &str,
    campaign: &str,
    reference: &str,
) -> pb::SubmitLeadRequest {
    let mut request = cfo_demo_request(email);
    let company = request.company.as_mut().unwrap();
    company.name = name.into();
    company.domain = domain.into();
    request.source.as_mut().unwrap().campaign = campaign.into();
    request.external_reference = reference.into();
    request
}

/// The names of every lead the filter finds.
async fn found(app: &TestApp, filter: &str) -> Result<BTreeSet<String>, tonic::Status> {
    let request = pb::ListLeadsRequest {
        filter: filter.into(),
        page_size: 1000,
        ..Default::default()
    };
    let page = app.leads.clone().list_leads(request).await?.into_inner();
    assert!(page.next_page_token.is_empty());
    Ok(page.leads.into_iter().map(|l| l.name).collect())
}

fn set(names: &[&String]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

contract! {
    async fn each_search_field_finds_its_leads_and_no_others(backend: Backend) {
        let app = spawn_app(&backend).await;
        let jane = submitted(&app, at_company("Jane.Doe@ACME.com", "Acme Industrie", "acme-industrie.fr", "demo-form", "CRM-0001")).await.name;
        let john = submitted(&app, at_company("john@other.example", "ACME Consulting 50%", "AcmeConsulting.Example.", "Spring-Launch", "CRM-0002")).await.name;
        let solo = submitted(&app, minimal_submission("solo@Solo.Example")).await.name;
        let none: &[&String] = &[];
        for (filter, expected) in [
            (r#"contact.email = "Jane.Doe@ACME.com""#, vec![&jane]),
            (r#"contact.email = " jane.doe@acme.com. ""#, vec![&jane]),
            (r#"contact.email != "jane.doe@acme.com""#, vec![&john, &solo]),
            (r#"company.domain = "ACME-Industrie.FR""#, vec![&jane]),
            (r#"company.domain = "acmeconsulting.example""#, vec![&john]),
            // No company domain given: the email's, as scoring uses it.
            (r#"company.domain = "solo.example""#, vec![&solo]),
            (r#"company.domain : "EXAMPLE""#, vec![&john, &solo]),
            (r#"company.domain != "acme-industrie.fr""#, vec![&john, &solo]),
            (r#"company.name = "ACME INDUSTRIE""#, vec![&jane]),
            (r#"company.name = "acme""#, none.to_vec()),
            (r#"company.name : "acme""#, vec![&jane, &john]),
            (r#"company.name : "CONSULT""#, vec![&john]),
            (r#"company.name = "acme c*""#, vec![&john]),
            (r#"company.name = "Acme*""#, vec![&jane, &john]),
            (r#"company.name : "50%""#, vec![&john]),
            (r#"company.name : "%""#, vec![&john]),
            (r#"company.name : "_""#, none.to_vec()),
            (r#"source.campaign = "demo-form""#, vec![&jane]),
            (r#"source.campaign = "spring-launch""#, none.to_vec()),
            (r#"source.campaign : "LAUNCH""#, vec![&john]),
            (r#"external_reference = "CRM-0002""#, vec![&john]),
            (r#"external_reference = "crm-0002""#, none.to_vec()),
            (r#"external_reference = """#, vec![&solo]),
            (r#"NOT company.name : "acme""#, vec![&solo]),
            (r#"NOT company.name = "acme*""#, vec![&solo]),
            (r#"company.name != "acme*""#, vec![&solo]),
            (r#"(contact.email = "jane.doe@acme.com" OR external_reference = "CRM-0002")"#, vec![&jane, &john]),
            (r#"NOT (contact.email = "jane.doe@acme.com" OR external_reference = "CRM-0002")"#, vec![&solo]),
            (r#"(NOT company.domain : "example" OR source.campaign = "Spring-Launch")"#, vec![&jane, &john]),
            (r#"company.name : "acme" AND NOT source.campaign = "demo-form""#, vec![&john]),
            ("NOT state = MARKETING_QUALIFIED", vec![&solo]),
        ] {
            assert_eq!(found(&app, filter).await.unwrap(), set(&expected), "{filter}");
        }
    }

    async fn a_policy_simulation_selects_leads_by_the_search_fields(backend: Backend) {
        let app = spawn_app(&backend).await;
        submitted(&app, at_company("a@acme.example", "Acme", "acme.example", "", "CRM-1")).await;
        submitted(&app, at_company("b@acme.example", "Acme", "acme.example", "", "")).await;
        submitted(&app, minimal_submission("c@other.example")).await;
        let mut client = PolicyServiceClient::new(app.channel.clone());
        for (filter, evaluated) in [
            (r#"company.domain = "ACME.example""#, 2),
            (r#"(external_reference = "CRM-1" OR contact.email = "C@other.example")"#, 2),
            (r#"NOT company.name : "acme""#, 1),
        ] {
            let request = pb::SimulatePolicyRequest { content: DEFAULT_POLICY.into(), filter: filter.into(), sample_size: 0 };
            let simulation = client.simulate_policy(request).await.unwrap().into_inner();
            assert_eq!(simulation.leads_evaluated, evaluated, "{filter}");
        }
        let request = pb::SimulatePolicyRequest { content: DEFAULT_POLICY.into(), filter: r#"contact.email : "a""#.into(), sample_size: 0 };
        let status = client.simulate_policy(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["filter"]);
    }

    async fn a_search_pages_through_its_leads_only(backend: Backend) {
        let app = spawn_app(&backend).await;
        let mut acme = Vec::new();
        for i in 0..5 {
            acme.push(submitted(&app, at_company(&format!("p{i}@acme.example"), "Acme", "Acme.Example", "", "")).await.name);
            submitted(&app, at_company(&format!("q{i}@other.example"), "Other", "other.example", "", "")).await;
        }
        let filter = r#"company.domain = "acme.example""#;
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut first_token = None;
        loop {
            let request = pb::ListLeadsRequest { filter: filter.into(), page_size: 2, page_token: token.clone(), ..Default::default() };
            let page = app.leads.clone().list_leads(request).await.unwrap().into_inner();
            seen.extend(page.leads.into_iter().map(|l| l.name));
            if page.next_page_token.is_empty() {
                break;
            }
            first_token.get_or_insert(page.next_page_token.clone());
            token = page.next_page_token;
        }
        assert_eq!(seen, acme, "every acme lead once, in creation order");
        let request = pb::ListLeadsRequest {
            filter: r#"NOT company.domain = "acme.example""#.into(),
            page_size: 2,
            page_token: first_token.unwrap(),
            ..Default::default()
        };
        let status = app.leads.clone().list_leads(request).await.unwrap_err();
        assert_eq!(bad_fields(&status), ["page_token"]);
    }

    async fn bad_search_filters_are_invalid_arguments_naming_the_filter(backend: Backend) {
        let app = spawn_app(&backend).await;
        for (filter, says) in [
            (r#"contact.email = "jane""#, "contact.email must be an email address"),
            (r#"contact.email : "jane""#, "contact.email accepts only = and !="),
            (r#"external_reference : "CRM""#, "external_reference accepts only = and !="),
            (r#"company.domain = "not a domain""#, "company.domain must be a domain name"),
            (r#"company.name > "a""#, "company.name accepts only =, != and :"),
            (r#"company.name = "*""#, "company.name needs text before *"),
            ("scores.combined_points : 5", "scores.combined_points does not accept :"),
            (r#"NOT (company.name : "a""#, "expected OR or ) in filter"),
            (r#"company.name : "a" NOT"#, "expected AND in filter, found NOT"),
            ("company.name : \"a\0\"", "company.name must not contain control characters"),
        ] {
            let status = found(&app, filter).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{filter}");
            assert_eq!(bad_fields(&status), ["filter"], "{filter}");
            assert!(status.message().contains(says), "{filter}: {}", status.message());
        }
    }

    async fn every_lead_write_fills_the_search_columns_and_the_migration_backfills_them(backend: Backend) {
        let mut app = spawn_app(&backend).await;
        let jane = submitted(&app, at_company("jane@acme.example", "ACME Industrie", "Acme.Example", "demo-form", "CRM-7")).await.name;
        let solo = submitted(&app, minimal_submission("solo@solo.example")).await.name;
        let filled = "SELECT COUNT(*) FROM leads WHERE company_domain = 'acme.example' \
            AND company_name_folded = 'acme industrie' AND source_campaign = 'demo-form' AND external_reference = 'CRM-7'";
        let from_email = "SELECT COUNT(*) FROM leads WHERE company_domain = 'solo.example' \
            AND company_name_folded = '' AND source_campaign = '' AND external_reference = ''";
        assert_eq!((app.db.count(filled).await, app.db.count(from_email).await), (1, 1), "inserted");
        // An update writes the lead's columns again.
        let request = pb::RecordEngagementRequest { name: jane.clone(), events: vec![engagement(pb::EngagementKind::FormFill, None)], ..Default::default() };
        app.leads.clone().record_engagement(request).await.unwrap();
        assert_eq!(app.db.count("SELECT COUNT(*) FROM leads WHERE revision > 1").await, 1);
        assert_eq!(app.db.count(filled).await, 1, "updated");

        // The rows as they were before the migration: its columns, indexes and record gone.
        app.stop().await.unwrap();
        for statement in [
            "DROP INDEX leads_by_company_domain",
            "DROP INDEX leads_by_company_name",
            "DROP INDEX leads_by_external_reference",
            "ALTER TABLE leads DROP COLUMN company_domain",
            "ALTER TABLE leads DROP COLUMN company_name_folded",
            "ALTER TABLE leads DROP COLUMN source_campaign",
            "ALTER TABLE leads DROP COLUMN external_reference",
            "DELETE FROM _sqlx_migrations WHERE version = 20260401000000",
        ] {
            app.db.try_execute(statement).await.unwrap();
        }
        let app = spawn_on(app.db.clone(), Options::default()).await;
        app.wait_until_serving().await;
        assert_eq!((app.db.count(filled).await, app.db.count(from_email).await), (1, 1), "backfilled");
        assert_eq!(found(&app, r#"company.name = "acme industrie""#).await.unwrap(), set(&[&jane]));
        assert_eq!(found(&app, r#"company.domain = "solo.example""#).await.unwrap(), set(&[&solo]));
    }
}
