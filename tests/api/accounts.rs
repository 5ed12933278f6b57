//! Accounts kept from the chained trail: leads submitted over gRPC join the account of their
//! company's domain; the projection's tables say what it kept.

use std::time::Duration;

use leadgate::grpc::pb;

use crate::contract;

use crate::helpers::*;

/// Waits until the account projection has read every chained entry.
async fn projected(db: &TestDatabase) {
    db.wait_until_chained().await;
    let caught_up = eventually(Duration::from_secs(10), || async {
        let head = db.count("SELECT COALESCE(MAX(position), 0) FROM audit_log").await;
        db.count("SELECT position FROM account_projection").await == head
    })
    .await;
    assert!(caught_up, "the account projection reads the whole chain");
}

fn contact(email: &str, domain: &str, company: &str, function: &str) -> pb::SubmitLeadRequest {
    let mut request = cfo_demo_request(email);
    let c = request.contact.as_mut().unwrap();
    c.job_function = function.into();
    let co = request.company.as_mut().unwrap();
    co.domain = domain.into();
    co.name = company.into();
    request
}

contract! {
    async fn leads_join_the_account_of_their_company_domain_and_free_mail_joins_none(backend: Backend) {
        let app = spawn_app(&backend).await;
        // The article's CIO and his CFO at one company; a namesake company elsewhere; a gmail
        // contact without a company domain.
        submitted(&app, contact("cio@acme-industrie.fr", "acme-industrie.fr", "Acme", "it")).await;
        submitted(&app, contact("cfo@acme-industrie.fr", "ACME-Industrie.fr", "Acme", "finance")).await;
        submitted(&app, contact("buyer@acme.de", "acme.de", "Acme", "purchasing")).await;
        submitted(&app, contact("someone@gmail.com", "", "", "finance")).await;
        projected(&app.db).await;

        assert_eq!(app.db.count("SELECT COUNT(*) FROM accounts").await, 2, "Acme FR and Acme DE");
        let acme = "SELECT contacts FROM accounts WHERE account_key = 'domain:acme-industrie.fr'";
        assert_eq!(app.db.count(acme).await, 2, "the CIO and the CFO, domains compared in lower case");
        let de = "SELECT contacts FROM accounts WHERE account_key = 'domain:acme.de'";
        assert_eq!(app.db.count(de).await, 1, "a namesake company stays apart");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM account_contacts").await, 3, "the gmail contact joins none");
        let roles = "SELECT COUNT(*) FROM account_contacts WHERE account_key = 'domain:acme-industrie.fr' \
                     AND committee_role IN ('ECONOMIC_BUYER', 'TECHNICAL_EVALUATOR')";
        assert_eq!(app.db.count(roles).await, 2, "the CFO an economic buyer, the CIO a technical evaluator");

        // A resubmission with more engagement moves the account by that contact's difference.
        let before = app.db.count("SELECT engagement FROM accounts WHERE account_key = 'domain:acme.de'").await;
        let mut again = contact("buyer@acme.de", "acme.de", "Acme", "purchasing");
        again.events[0].kind = pb::EngagementKind::PricingPageVisit as i32;
        submitted(&app, again).await;
        projected(&app.db).await;
        let after = app.db.count("SELECT engagement FROM accounts WHERE account_key = 'domain:acme.de'").await;
        let cap = 3000; // the shipped policy's contact_engagement_cap, in hundredths
        assert!(after >= before && after <= cap, "{before} -> {after}");
        assert_eq!(app.db.count(de).await, 1, "still one contact");
    }
}
