//! Erasure (GDPR article 17): a lead's personal data replaced by a pseudonymous record that keeps
//! what the funnel, the reports and the audit chain need (state, scores, clocks, source, company
//! facts), so nothing downstream breaks and nothing identifies the person any more. The company
//! (name, domain, industry, size, country) is an organisation's, not a person's: it stays, as
//! in the audit entries.

use serde::{Deserialize, Serialize};

use crate::domain::lead::Lead;
use crate::domain::values::{DomainName, Email, LeadId};

/// The domain every erased lead's email is under: `.invalid` is reserved (RFC 2606), so no
/// submission can ever carry it.
pub const ERASED_EMAIL_DOMAIN: &str = "erased.invalid";

/// A request to erase a lead's personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// Why (a ticket number, "retention"); recorded in the audit entry, so no personal data.
    pub reason: String,
}

/// The pseudonymous email an erased lead keeps: unique per lead (the email column stays unique)
/// and tied to nothing but the lead's id.
pub fn erased_email(id: LeadId) -> Email {
    Email::parse(&format!("{}@{ERASED_EMAIL_DOMAIN}", id.as_uuid().simple()))
        .expect("a hex local part under a reserved domain is a valid email")
}

/// Removes every piece of personal data from `lead` (contact details, the CRM reference that
/// links to them, and free text that may hold them: signal subjects, discovery evidence,
/// override reasons) and returns the fields that held
/// something, as API paths, in a fixed order. The company's domain is kept (the email's when
/// none was given), as the scores and reports read it.
pub(super) fn pseudonymise(lead: &mut Lead) -> Vec<String> {
    let mut erased = vec!["contact.email".to_owned()];
    let profile = &mut lead.profile;
    if profile.company.domain.is_none() {
        profile.company.domain = DomainName::parse(profile.contact.email.domain()).ok();
    }
    profile.contact.email = erased_email(lead.id);
    let contact = &mut profile.contact;
    for (path, field) in [
        ("contact.given_name", &mut contact.given_name),
        ("contact.family_name", &mut contact.family_name),
        ("contact.phone", &mut contact.phone),
        ("contact.job_title", &mut contact.job_title),
        ("external_reference", &mut profile.external_reference),
    ] {
        if !field.is_empty() {
            field.clear();
            erased.push(path.to_owned());
        }
    }
    let mut cleared = |path: &str, texts: &mut dyn Iterator<Item = &mut String>| {
        let mut any = false;
        for text in texts {
            any |= !text.is_empty();
            text.clear();
        }
        if any {
            erased.push(path.to_owned());
        }
    };
    cleared(
        "events.subject",
        &mut lead.events.iter_mut().map(|e| &mut e.subject),
    );
    let bant = &mut lead.bant;
    cleared(
        "bant.evidence",
        &mut [
            &mut bant.need.evidence,
            &mut bant.budget.evidence,
            &mut bant.authority.evidence,
            &mut bant.timing.evidence,
        ]
        .into_iter(),
    );
    cleared(
        "override.reason",
        &mut lead.human_override.iter_mut().map(|o| &mut o.reason),
    );
    // The free text of the lead's audit entries was sealed under this key: destroyed, it reads
    // as erased from then on, and the chain, which hashed the sealed text, stays whole.
    if lead.text_key.take().is_some() {
        erased.push("audit.free_text".to_owned());
    }
    erased
}
