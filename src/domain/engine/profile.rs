//! Corrections of a lead's contact and company data: by UpdateLead (the fields a mask names) and
//! by a resubmission (the fields the policy's `[resubmission] profile` rule lets it change).
//!
//! What a change records names the fields by their API path and carries only the new values that
//! are not personal data (company, seniority, job function, the email's domain): enough to score
//! the lead again when its trail is replayed, nothing that identifies the person.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::names::named_enum;
use crate::domain::policy::ProfileRule;
use crate::domain::values::{Code, Company, Email, Profile, Seniority};

named_enum! {
    /// A field of a lead's profile that can be corrected, by its path in the API's `Lead`.
    pub enum ProfileField {
        ContactEmail => "contact.email",
        ContactGivenName => "contact.given_name",
        ContactFamilyName => "contact.family_name",
        ContactPhone => "contact.phone",
        ContactJobTitle => "contact.job_title",
        ContactSeniority => "contact.seniority",
        ContactJobFunction => "contact.job_function",
        CompanyName => "company.name",
        CompanyDomain => "company.domain",
        CompanyIndustry => "company.industry",
        CompanyEmployeeCount => "company.employee_count",
        CompanyCountryCode => "company.country_code",
    }
}

impl ProfileField {
    /// Whether the field identifies the person: its value never goes into an audit entry.
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            ProfileField::ContactEmail
                | ProfileField::ContactGivenName
                | ProfileField::ContactFamilyName
                | ProfileField::ContactPhone
                | ProfileField::ContactJobTitle
        )
    }
}

/// New contact and company values. Which of them apply is said next to them (a mask, or the
/// resubmission rule); an empty text or `None` is "cleared" for an update and "not given" for a
/// resubmission.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileValues {
    /// `None` when the email is not changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub given_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub family_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seniority: Option<Seniority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_function: Option<Code>,
    #[serde(default)]
    pub company: Company,
}

impl ProfileValues {
    /// The contact and company of a submission (the email is the lead's own: not a change).
    pub fn of(profile: &Profile) -> Self {
        let c = &profile.contact;
        Self {
            email: None,
            given_name: c.given_name.clone(),
            family_name: c.family_name.clone(),
            phone: c.phone.clone(),
            job_title: c.job_title.clone(),
            seniority: c.seniority,
            job_function: c.job_function.clone(),
            company: profile.company.clone(),
        }
    }

    /// Whether these values hold something for `field`.
    fn gives(&self, field: ProfileField) -> bool {
        use ProfileField as F;
        match field {
            F::ContactEmail => self.email.is_some(),
            F::ContactGivenName => !self.given_name.is_empty(),
            F::ContactFamilyName => !self.family_name.is_empty(),
            F::ContactPhone => !self.phone.is_empty(),
            F::ContactJobTitle => !self.job_title.is_empty(),
            F::ContactSeniority => self.seniority.is_some(),
            F::ContactJobFunction => self.job_function.is_some(),
            F::CompanyName => !self.company.name.is_empty(),
            F::CompanyDomain => self.company.domain.is_some(),
            F::CompanyIndustry => self.company.industry.is_some(),
            F::CompanyEmployeeCount => self.company.employee_count.is_some(),
            F::CompanyCountryCode => self.company.country.is_some(),
        }
    }
}

/// An UpdateLead: the fields its mask names and their new values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdate {
    pub fields: BTreeSet<ProfileField>,
    pub values: ProfileValues,
}

/// Whether `profile` holds nothing for `field`.
fn is_empty(profile: &Profile, field: ProfileField) -> bool {
    use ProfileField as F;
    let (c, co) = (&profile.contact, &profile.company);
    match field {
        F::ContactEmail => false,
        F::ContactGivenName => c.given_name.is_empty(),
        F::ContactFamilyName => c.family_name.is_empty(),
        F::ContactPhone => c.phone.is_empty(),
        F::ContactJobTitle => c.job_title.is_empty(),
        F::ContactSeniority => c.seniority.is_none(),
        F::ContactJobFunction => c.job_function.is_none(),
        F::CompanyName => co.name.is_empty(),
        F::CompanyDomain => co.domain.is_none(),
        F::CompanyIndustry => co.industry.is_none(),
        F::CompanyEmployeeCount => co.employee_count.is_none(),
        F::CompanyCountryCode => co.country.is_none(),
    }
}

/// Gives `field` its value from `values`; whether that changed it.
fn set(profile: &mut Profile, field: ProfileField, values: &ProfileValues) -> bool {
    fn put<T: PartialEq + Clone>(slot: &mut T, value: &T) -> bool {
        let changed = slot != value;
        if changed {
            *slot = value.clone();
        }
        changed
    }
    use ProfileField as F;
    let (c, co, v) = (&mut profile.contact, &mut profile.company, values);
    match field {
        F::ContactEmail => v.email.as_ref().is_some_and(|e| put(&mut c.email, e)),
        F::ContactGivenName => put(&mut c.given_name, &v.given_name),
        F::ContactFamilyName => put(&mut c.family_name, &v.family_name),
        F::ContactPhone => put(&mut c.phone, &v.phone),
        F::ContactJobTitle => put(&mut c.job_title, &v.job_title),
        F::ContactSeniority => put(&mut c.seniority, &v.seniority),
        F::ContactJobFunction => put(&mut c.job_function, &v.job_function),
        F::CompanyName => put(&mut co.name, &v.company.name),
        F::CompanyDomain => put(&mut co.domain, &v.company.domain),
        F::CompanyIndustry => put(&mut co.industry, &v.company.industry),
        F::CompanyEmployeeCount => put(&mut co.employee_count, &v.company.employee_count),
        F::CompanyCountryCode => put(&mut co.country, &v.company.country),
    }
}

/// Applies `fields` from `values`; what changed.
pub(super) fn update(
    profile: &mut Profile,
    fields: &BTreeSet<ProfileField>,
    values: &ProfileValues,
) -> ProfileChange {
    let changed: Vec<_> = fields
        .iter()
        .copied()
        .filter(|f| set(profile, *f, values))
        .collect();
    ProfileChange::of(profile, changed)
}

/// Applies what a resubmission brings, as the policy's rule says; what changed. Only values the
/// resubmission gives count: an empty field never clears what the lead holds.
pub(super) fn resubmit(profile: &mut Profile, values: &ProfileValues, rule: ProfileRule) -> ProfileChange {
    let fields: BTreeSet<_> = ProfileField::ALL
        .iter()
        .copied()
        .filter(|f| *f != ProfileField::ContactEmail && values.gives(*f))
        .filter(|f| match rule {
            ProfileRule::Keep => false,
            ProfileRule::FillEmpty => is_empty(profile, *f),
            ProfileRule::NewestWins => true,
        })
        .collect();
    update(profile, &fields, values)
}

/// A change of profile as its audit entry records it: the paths that changed and, of their new
/// values, only those that are not personal data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileChange {
    /// The fields that changed, by path, in a fixed order.
    pub fields: Vec<ProfileField>,
    /// The changed company fields' new values (a changed field left out was cleared).
    #[serde(default, skip_serializing_if = "is_default")]
    pub company: Company,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seniority: Option<Seniority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_function: Option<Code>,
    /// The new email's domain (scoring reads it), when the email changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domain: Option<String>,
}

fn is_default(company: &Company) -> bool {
    *company == Company::default()
}

impl ProfileChange {
    fn of(profile: &Profile, fields: Vec<ProfileField>) -> Self {
        use ProfileField as F;
        let (c, co) = (&profile.contact, &profile.company);
        let has = |f| fields.contains(&f);
        Self {
            company: Company {
                name: if has(F::CompanyName) {
                    co.name.clone()
                } else {
                    String::new()
                },
                domain: co.domain.clone().filter(|_| has(F::CompanyDomain)),
                industry: co.industry.clone().filter(|_| has(F::CompanyIndustry)),
                employee_count: co.employee_count.filter(|_| has(F::CompanyEmployeeCount)),
                country: co.country.clone().filter(|_| has(F::CompanyCountryCode)),
            },
            seniority: c.seniority.filter(|_| has(F::ContactSeniority)),
            job_function: c.job_function.clone().filter(|_| has(F::ContactJobFunction)),
            email_domain: has(F::ContactEmail).then(|| c.email.domain().to_owned()),
            fields,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The values that make the same change again on a lead rebuilt from its trail, whose
    /// personal fields are unknown: those get stand-ins that differ from any earlier one (`tag`
    /// is unique to the entry), so that the change is one again.
    #[cfg(test)]
    pub(super) fn replayed(&self, tag: usize) -> Result<ProfileUpdate, String> {
        use ProfileField as F;
        let stand_in = |f| {
            if self.fields.contains(&f) {
                format!("replayed {tag}")
            } else {
                String::new()
            }
        };
        let email = match &self.email_domain {
            Some(domain) => Some(Email::parse(&format!("replayed.{tag}@{domain}"))?),
            None => None,
        };
        Ok(ProfileUpdate {
            fields: self.fields.iter().copied().collect(),
            values: ProfileValues {
                email,
                given_name: stand_in(F::ContactGivenName),
                family_name: stand_in(F::ContactFamilyName),
                phone: stand_in(F::ContactPhone),
                job_title: stand_in(F::ContactJobTitle),
                seniority: self.seniority,
                job_function: self.job_function.clone(),
                company: self.company.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Command, replay};
    use super::*;
    use crate::domain::audit::AuditKind;
    use crate::domain::lifecycle::LeadState;
    use crate::domain::values::{CountryCode, FitGrade, Source, SourceChannel};

    fn update(fields: &[ProfileField], values: ProfileValues) -> Command {
        Command::UpdateProfile(ProfileUpdate {
            fields: fields.iter().copied().collect(),
            values,
        })
    }

    fn company(industry: &str, employees: u32) -> ProfileValues {
        ProfileValues {
            company: Company {
                industry: Some(Code::parse(industry).unwrap()),
                employee_count: Some(employees),
                ..Company::default()
            },
            ..ProfileValues::default()
        }
    }

    #[test]
    fn a_corrected_company_is_scored_again_and_the_lead_decided_again() {
        let p = policy();
        let lead = submit(&law_firm(), &[], &p, t0()).lead;
        assert_eq!(lead.scores.grade, FitGrade::D);
        assert_eq!(lead.state, LeadState::Nurturing, "outside the profile: nurtured");
        let fields = [ProfileField::CompanyIndustry, ProfileField::CompanyEmployeeCount];
        let updated = run(&lead, update(&fields, company("manufacturing", 300)), &p, at(5));
        let cfo = submit(&cfo(), &[], &p, t0()).lead;
        assert_eq!(
            updated.lead.scores.fit, cfo.scores.fit,
            "scored as the same profile"
        );
        assert_eq!(updated.lead.scores.grade, FitGrade::A);
        assert_eq!(updated.lead.revision, lead.revision + 1);
        let entry = &updated.entries[0];
        assert_eq!(entry.kind, AuditKind::LeadUpdated);
        let body = entry.parsed_body();
        assert_eq!(body.scores_before.unwrap().grade, FitGrade::D);
        assert_eq!(body.scores_after.unwrap().grade, FitGrade::A);
        assert_eq!(entry.state_before, Some(LeadState::Nurturing));
        assert_eq!(entry.state_after, Some(updated.lead.state));
    }

    #[test]
    fn an_update_records_the_paths_it_changed_never_the_personal_values() {
        let p = policy();
        let lead = submit(&cfo(), &[], &p, t0()).lead;
        let values = ProfileValues {
            email: Some(Email::parse("Claire.Martin@Nouvelle-Adresse.fr").unwrap()),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: "+33 6 12 34 56 78".into(),
            job_title: "Directrice financière".into(),
            company: Company {
                country: Some(CountryCode::parse("BE").unwrap()),
                ..Company::default()
            },
            ..ProfileValues::default()
        };
        use ProfileField as F;
        let fields = [
            F::ContactEmail,
            F::ContactGivenName,
            F::ContactFamilyName,
            F::ContactPhone,
            F::ContactJobTitle,
            F::CompanyCountryCode,
        ];
        let updated = run(&lead, update(&fields, values), &p, at(5));
        assert_eq!(updated.lead.profile.contact.phone, "+33 6 12 34 56 78");
        assert_eq!(
            updated.lead.profile.contact.email.as_str(),
            "claire.martin@nouvelle-adresse.fr"
        );
        let body = &updated.entries[0].body;
        for personal in ["claire", "Claire", "Martin", "12 34", "Directrice"] {
            assert!(!body.contains(personal), "{personal:?} in {body}");
        }
        let inputs = updated.entries[0].parsed_body().inputs;
        assert_eq!(
            inputs,
            serde_json::json!({
                "fields": ["contact.email", "contact.given_name", "contact.family_name", "contact.phone",
                           "contact.job_title", "company.country_code"],
                "company": { "country": "BE" },
                "email_domain": "nouvelle-adresse.fr",
            })
        );
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let p = policy();
        let lead = submit(&cfo(), &[], &p, t0()).lead;
        let same = ProfileValues::of(&lead.profile);
        let fields = [ProfileField::ContactPhone, ProfileField::CompanyName];
        let applied = run(&lead, update(&fields, same), &p, at(5));
        assert!(applied.entries.is_empty());
        assert_eq!(applied.lead, lead, "not even re-scored");
    }

    #[test]
    fn a_masked_field_left_empty_is_cleared() {
        let p = policy();
        let lead = submit(&cfo(), &[], &p, t0()).lead;
        let fields = [ProfileField::ContactPhone, ProfileField::CompanyIndustry];
        let applied = run(&lead, update(&fields, ProfileValues::default()), &p, at(5));
        assert_eq!(applied.lead.profile.contact.phone, "");
        assert_eq!(applied.lead.profile.company.industry, None);
        assert!(
            applied.lead.scores.fit < lead.scores.fit,
            "the industry's points are gone"
        );
        let inputs = applied.entries[0].parsed_body().inputs;
        assert_eq!(
            inputs,
            serde_json::json!({ "fields": ["contact.phone", "company.industry"] })
        );
    }

    fn resubmit(values: ProfileValues) -> Command {
        Command::Resubmit {
            source: Source {
                channel: SourceChannel::Website,
                campaign: String::new(),
            },
            events: vec![],
            profile: values,
        }
    }

    /// A lead without phone nor industry, then resubmitted with both and another company name.
    fn resubmitted(rule: &str) -> (super::super::Applied, crate::domain::lead::Lead) {
        let p = policy_with(&[("profile = \"fill_empty\"", &format!("profile = \"{rule}\""))]);
        let mut lead = submit(&cfo(), &[], &p, t0()).lead;
        lead.profile.contact.phone.clear();
        lead.profile.company.industry = None;
        let mut values = ProfileValues::of(&cfo().build());
        values.phone = "+33 1 99 99 99 99".into();
        values.company.name = "Acme Industrie SA".into();
        values.given_name.clear(); // not given: never clears
        (run(&lead, resubmit(values), &p, at(5)), lead)
    }

    #[test]
    fn a_resubmission_fills_only_empty_fields_by_default() {
        let (applied, before) = resubmitted("fill_empty");
        let profile = &applied.lead.profile;
        assert_eq!(profile.contact.phone, "+33 1 99 99 99 99");
        assert_eq!(
            profile.company.industry.as_ref().unwrap().as_str(),
            "manufacturing"
        );
        assert_eq!(profile.company.name, before.profile.company.name, "kept");
        assert_eq!(profile.contact.given_name, "Given");
        let inputs = applied.entries[0].parsed_body().inputs;
        assert_eq!(
            inputs["profile"],
            serde_json::json!({
                "fields": ["contact.phone", "company.industry"],
                "company": { "industry": "manufacturing" },
            })
        );
        assert!(!applied.entries[0].body.contains("99 99"));
    }

    #[test]
    fn a_resubmission_replaces_what_it_gives_when_the_newest_wins() {
        let (applied, _) = resubmitted("newest_wins");
        let profile = &applied.lead.profile;
        assert_eq!(profile.contact.phone, "+33 1 99 99 99 99");
        assert_eq!(profile.company.name, "Acme Industrie SA");
        assert_eq!(
            profile.contact.given_name, "Given",
            "an empty value clears nothing"
        );
        let inputs = applied.entries[0].parsed_body().inputs;
        assert_eq!(
            inputs["profile"]["fields"],
            serde_json::json!(["contact.phone", "company.name", "company.industry"])
        );
    }

    #[test]
    fn a_resubmission_changes_no_profile_when_the_policy_keeps_it() {
        let (applied, before) = resubmitted("keep");
        assert_eq!(applied.lead.profile, before.profile);
        let inputs = applied.entries[0].parsed_body().inputs;
        assert!(
            inputs.get("profile").is_none(),
            "written as before the rule: {inputs}"
        );
    }

    #[test]
    fn an_updated_trail_replays_into_the_same_scores_and_state() {
        let p = policy();
        let created = submit(&law_firm(), &[], &p, t0());
        let fields = [ProfileField::CompanyIndustry, ProfileField::ContactPhone];
        let updated = run(&created.lead, update(&fields, company("software", 0)), &p, at(5));
        let entries: Vec<_> = created.entries.into_iter().chain(updated.entries).collect();
        let rebuilt = replay(&entries, |v| (v == p.version).then_some(&p)).unwrap();
        assert_eq!(rebuilt.profile.company, updated.lead.profile.company);
        assert_eq!(rebuilt.scores, updated.lead.scores);
        assert_eq!(rebuilt.state, updated.lead.state);
        assert_eq!(rebuilt.revision, updated.lead.revision);
    }
}
