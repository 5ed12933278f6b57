//! Accounts: the company a lead belongs to, the part each of its contacts plays in the buying
//! committee, and what the account rolls up from them. Pure rules: the store keeps each
//! contact's [`Contribution`] beside the account's [`Rollup`], and a change of one contact moves
//! the rollup by that contact's difference alone ([`Rollup::replace`]), never by reading the
//! account's other contacts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::facts::Points;
use super::lead::Lead;
use super::lifecycle::LeadState;
use super::names::named_enum;
use super::policy::{AccountRules, CommitteeRules, Rules};
use super::values::{Contact, LeadId, Profile, Timestamp};

named_enum! {
    prefix = "COMMITTEE_ROLE_",
    /// The part a contact plays in its company's buying decision.
    pub enum CommitteeRole {
        DecisionMaker => "DECISION_MAKER",
        EconomicBuyer => "ECONOMIC_BUYER",
        Champion => "CHAMPION",
        Influencer => "INFLUENCER",
        TechnicalEvaluator => "TECHNICAL_EVALUATOR",
        User => "USER",
    }
}

impl CommitteeRole {
    /// The role in words, for reasons ("no decision maker involved at Acme").
    pub fn words(self) -> &'static str {
        match self {
            CommitteeRole::DecisionMaker => "decision maker",
            CommitteeRole::EconomicBuyer => "economic buyer",
            CommitteeRole::Champion => "champion",
            CommitteeRole::Influencer => "influencer",
            CommitteeRole::TechnicalEvaluator => "technical evaluator",
            CommitteeRole::User => "user",
        }
    }
}

named_enum! {
    prefix = "ACCOUNT_STATE_",
    /// Where an account stands, from what its contacts did.
    pub enum AccountState {
        /// No contact has engaged enough to count.
        Unengaged => "UNENGAGED",
        /// Its contacts' engagement reached the policy's threshold.
        Engaged => "ENGAGED",
        /// One of its leads is sales-qualified.
        Qualified => "QUALIFIED",
        /// One of its leads converted.
        Customer => "CUSTOMER",
    }
}

impl AccountState {
    /// The states the account may move to from this one. A customer stays one: the rollup never
    /// takes that back by itself.
    pub fn successors(self) -> &'static [AccountState] {
        use AccountState::{Customer, Engaged, Qualified, Unengaged};
        match self {
            Unengaged => &[Engaged, Qualified, Customer],
            Engaged => &[Unengaged, Qualified, Customer],
            Qualified => &[Unengaged, Engaged, Customer],
            Customer => &[],
        }
    }

    pub fn may_become(self, next: AccountState) -> bool {
        self == next || self.successors().contains(&next)
    }
}

/// What finds a lead's account: the caller's account reference (a CRM account id), else the
/// company's domain, else the email's. Free-mail and ISP domains name no company.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AccountKey {
    Reference(String),
    Domain(String),
}

impl AccountKey {
    /// The key of the account `profile` belongs to, if any. `reference`: the caller's account
    /// reference, which wins over any domain.
    pub fn of(profile: &Profile, reference: &str, rules: &AccountRules) -> Option<AccountKey> {
        let reference = reference.trim();
        if !reference.is_empty() {
            return Some(AccountKey::Reference(reference.to_owned()));
        }
        let domain = normalise_domain(profile.company_domain())?;
        (!rules.free_mail_domains.contains(&domain)).then_some(AccountKey::Domain(domain))
    }

    /// The stored form: `domain:acme.fr` or `ref:0015g00000XyZ`.
    pub fn stored(&self) -> String {
        match self {
            AccountKey::Reference(r) => format!("ref:{r}"),
            AccountKey::Domain(d) => format!("domain:{d}"),
        }
    }

    /// The key of a stored form.
    pub fn from_stored(stored: &str) -> Option<AccountKey> {
        if let Some(reference) = stored.strip_prefix("ref:") {
            Some(AccountKey::Reference(reference.to_owned()))
        } else {
            stored
                .strip_prefix("domain:")
                .map(|d| AccountKey::Domain(d.to_owned()))
        }
    }
}

/// A domain as accounts compare them: lower case, without a trailing dot or a leading `www.`.
/// `None` for what cannot be a company's domain (no dot, an empty label, a character a host
/// name does not have).
pub fn normalise_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.strip_prefix("www.").unwrap_or(&domain);
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then(|| domain.to_owned())
}

/// The role a contact plays: the one a caller or a person gave, else the first of the policy's
/// role rules its seniority and job function match, else none.
pub fn committee_role(
    given: Option<CommitteeRole>,
    contact: &Contact,
    rules: &CommitteeRules,
) -> Option<CommitteeRole> {
    given.or_else(|| {
        rules
            .roles
            .iter()
            .find(|rule| {
                let seniority = rule.seniority.is_empty()
                    || contact.seniority.is_some_and(|s| rule.seniority.contains(&s));
                let function = rule.job_function.is_empty()
                    || contact
                        .job_function
                        .as_ref()
                        .is_some_and(|f| rule.job_function.contains(f.as_str()));
                seniority && function
            })
            .map(|rule| rule.role)
    })
}

/// One contact's part in its account: what it adds to the rollup, and what the committee rule
/// reads of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Its engagement points, capped per contact ([`AccountRules::contact_engagement_cap`]).
    pub engagement: Points,
    pub role: Option<CommitteeRole>,
    /// When it last took part (engaged, or was on a discovery call); `None`: never.
    pub involved_at: Option<Timestamp>,
    /// It left the company (or the committee): it no longer counts for later decisions.
    pub left: bool,
    /// Its lead is sales-qualified (or further on toward a deal).
    pub qualified: bool,
    /// Its lead converted.
    pub customer: bool,
}

impl Contribution {
    /// Its engagement capped as the policy says.
    pub fn capped(engagement: Points, rules: &AccountRules) -> Points {
        Points(engagement.0.clamp(0, rules.contact_engagement_cap.0))
    }

    /// Whether it counts as involved at `now`: took part within the policy's window and did not
    /// leave.
    pub fn involved(&self, now: Timestamp, rules: &CommitteeRules) -> bool {
        !self.left
            && self.involved_at.is_some_and(|at| {
                at <= now && now - at <= chrono::Duration::days(i64::from(rules.involvement_days))
            })
    }
}

/// What an account sums over its contacts. Kept by differences: replacing one contact's
/// contribution moves each sum by that contact's change, so the totals are the same whatever
/// the order the changes came in, and equal to the sums over the contributions as they stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    pub contacts: i64,
    pub engagement: Points,
    pub qualified_contacts: i64,
    pub customer_contacts: i64,
}

impl Rollup {
    /// The rollup after one contact's contribution went from `before` (`None`: it was not a
    /// contact) to `after` (`None`: it is no longer one).
    pub fn replace(self, before: Option<&Contribution>, after: Option<&Contribution>) -> Rollup {
        let part = |c: Option<&Contribution>| {
            c.map_or(Rollup::default(), |c| Rollup {
                contacts: 1,
                engagement: c.engagement,
                qualified_contacts: i64::from(c.qualified),
                customer_contacts: i64::from(c.customer),
            })
        };
        let (old, new) = (part(before), part(after));
        Rollup {
            contacts: self.contacts - old.contacts + new.contacts,
            engagement: Points(self.engagement.0 - old.engagement.0 + new.engagement.0),
            qualified_contacts: self.qualified_contacts - old.qualified_contacts + new.qualified_contacts,
            customer_contacts: self.customer_contacts - old.customer_contacts + new.customer_contacts,
        }
    }

    /// Where the rollup puts the account.
    pub fn state(&self, rules: &AccountRules) -> AccountState {
        if self.customer_contacts > 0 {
            AccountState::Customer
        } else if self.qualified_contacts > 0 {
            AccountState::Qualified
        } else if self.engagement >= rules.engaged_points && self.engagement.0 > 0 {
            AccountState::Engaged
        } else {
            AccountState::Unengaged
        }
    }
}

/// The account's next state: where the rollup puts it, if the transition table allows it from
/// `current`; else `current` stays.
pub fn next_state(current: AccountState, rollup: &Rollup, rules: &AccountRules) -> AccountState {
    let target = rollup.state(rules);
    if current.may_become(target) {
        target
    } else {
        current
    }
}

/// What the committee rule says of authority for a lead of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitteeVerdict {
    /// A contact in one of the roles a deal needs is involved: that role.
    Met(CommitteeRole),
    /// None is: the roles that would do, for the reason ("no decision maker or economic buyer
    /// involved at Acme").
    Missing(Vec<CommitteeRole>),
}

impl CommitteeVerdict {
    /// The verdict, given the roles of the account's involved contacts.
    pub fn of(involved: &BTreeSet<CommitteeRole>, rules: &CommitteeRules) -> CommitteeVerdict {
        match rules.required_roles.iter().find(|r| involved.contains(r)) {
            Some(role) => CommitteeVerdict::Met(*role),
            None => CommitteeVerdict::Missing(rules.required_roles.clone()),
        }
    }

    /// The reason in words, naming the account.
    pub fn describe(&self, account: &str) -> String {
        match self {
            CommitteeVerdict::Met(role) => format!("a {} is involved at {account}", role.words()),
            CommitteeVerdict::Missing(roles) => {
                let words: Vec<&str> = roles.iter().map(|r| r.words()).collect();
                format!("no {} involved at {account}", words.join(" or "))
            }
        }
    }
}

/// A contact as its account sees it now: the account's key and its contribution; `None` when
/// the lead belongs to no account (a free-mail address, no domain) or is an alias of another
/// (a merged lead's signals count on the lead it was merged into).
pub fn contact_of(
    lead: &Lead,
    role: Option<CommitteeRole>,
    rules: &Rules,
) -> Option<(AccountKey, Contribution)> {
    // An erased lead's email is a pseudonym: only a company domain given for it still names
    // its account.
    if lead.merged_into.is_some() || (lead.erased_at.is_some() && lead.profile.company.domain.is_none()) {
        return None;
    }
    let key = AccountKey::of(&lead.profile, "", &rules.accounts)?;
    let engaged_at = lead.events.iter().map(|e| e.occurred_at).max();
    let involved_at = engaged_at.max(lead.bant.last_call_at);
    let contribution = Contribution {
        engagement: Contribution::capped(lead.scores.engagement, &rules.accounts),
        role: committee_role(role, &lead.profile.contact, &rules.committee),
        involved_at,
        left: false,
        qualified: matches!(lead.state, LeadState::SalesQualified | LeadState::Converted),
        customer: lead.state == LeadState::Converted,
    };
    Some((key, contribution))
}

/// An account as the projection keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub state: AccountState,
    pub rollup: Rollup,
}

impl Default for AccountView {
    fn default() -> Self {
        Self {
            state: AccountState::Unengaged,
            rollup: Rollup::default(),
        }
    }
}

/// Accounts kept by differences as their contacts change: each change of a contact moves the
/// account it left and the account it joined by that contact's difference alone. The store
/// holds the same maps as rows; this is the rule it applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    pub contacts: BTreeMap<LeadId, (AccountKey, Contribution)>,
    pub accounts: BTreeMap<AccountKey, AccountView>,
}

/// An account whose state changed, for its audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountChange {
    pub key: AccountKey,
    pub from: AccountState,
    pub to: AccountState,
}

impl Projection {
    /// Applies a contact as it now stands (`None`: it belongs to no account any more): the
    /// accounts whose state changed.
    pub fn apply(
        &mut self,
        lead: LeadId,
        now: Option<(AccountKey, Contribution)>,
        rules: &AccountRules,
    ) -> Vec<AccountChange> {
        let before = self.contacts.remove(&lead);
        if before == now {
            if let Some(unchanged) = before {
                self.contacts.insert(lead, unchanged);
            }
            return Vec::new();
        }
        let mut touched = Vec::new();
        if let Some((key, old)) = &before {
            let account = self.accounts.entry(key.clone()).or_default();
            account.rollup = account.rollup.replace(Some(old), None);
            touched.push(key.clone());
        }
        if let Some((key, new)) = &now {
            let account = self.accounts.entry(key.clone()).or_default();
            account.rollup = account.rollup.replace(None, Some(new));
            if !touched.contains(key) {
                touched.push(key.clone());
            }
            self.contacts.insert(lead, (key.clone(), new.clone()));
        }
        touched
            .into_iter()
            .filter_map(|key| {
                let account = self.accounts.get_mut(&key)?;
                let to = next_state(account.state, &account.rollup, rules);
                let from = std::mem::replace(&mut account.state, to);
                (from != to).then_some(AccountChange { key, from, to })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::domain::policy::Policy;
    use crate::domain::values::{Code, Email, Seniority};

    fn rules() -> (AccountRules, CommitteeRules) {
        let policy = Policy::default_policy();
        (policy.rules.accounts.clone(), policy.rules.committee.clone())
    }

    fn t(day: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap()
    }

    fn contact(seniority: Option<Seniority>, function: Option<&str>) -> Contact {
        Contact {
            email: Email::parse("someone@acme.fr").unwrap(),
            given_name: String::new(),
            family_name: String::new(),
            phone: String::new(),
            job_title: String::new(),
            seniority,
            job_function: function.map(|f| Code::parse(f).unwrap()),
        }
    }

    #[test]
    fn domains_are_compared_in_lower_case_without_www_or_a_trailing_dot() {
        assert_eq!(
            normalise_domain(" WWW.Acme-Industrie.FR. ").as_deref(),
            Some("acme-industrie.fr")
        );
        for bad in ["localhost", "acme..fr", "-acme.fr", "acme.fr/x", "", "."] {
            assert_eq!(normalise_domain(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_free_mail_domain_names_no_account_and_a_reference_wins_over_the_domain() {
        let (accounts, _) = rules();
        let mut spec = crate::domain::engine::fixtures::cfo();
        spec.email = "claire@gmail.com";
        let mut profile = spec.build();
        assert_eq!(AccountKey::of(&profile, "", &accounts), None);
        assert_eq!(
            AccountKey::of(&profile, " 0015g00000XyZ ", &accounts),
            Some(AccountKey::Reference("0015g00000XyZ".into()))
        );
        profile.contact.email = Email::parse("claire@acme.fr").unwrap();
        let key = AccountKey::of(&profile, "", &accounts).unwrap();
        assert_eq!(key.stored(), "domain:acme.fr");
    }

    #[test]
    fn a_role_comes_from_the_caller_else_from_the_first_matching_rule() {
        let (_, committee) = rules();
        let cfo = contact(Some(Seniority::Executive), Some("finance"));
        assert_eq!(
            committee_role(None, &cfo, &committee),
            Some(CommitteeRole::EconomicBuyer)
        );
        let ceo = contact(Some(Seniority::Executive), Some("general_management"));
        assert_eq!(
            committee_role(None, &ceo, &committee),
            Some(CommitteeRole::DecisionMaker)
        );
        // The article's CIO depends on the committee: he is not one of the roles a deal needs.
        let cio = contact(Some(Seniority::Executive), Some("it"));
        assert_eq!(
            committee_role(None, &cio, &committee),
            Some(CommitteeRole::TechnicalEvaluator)
        );
        assert!(
            !committee
                .required_roles
                .contains(&CommitteeRole::TechnicalEvaluator)
        );
        assert_eq!(
            committee_role(Some(CommitteeRole::Champion), &cfo, &committee),
            Some(CommitteeRole::Champion)
        );
        let unknown = contact(None, None);
        assert_eq!(committee_role(None, &unknown, &committee), None);
    }

    #[test]
    fn a_contact_counts_as_involved_within_the_window_until_it_leaves() {
        let (_, committee) = rules();
        let mut c = Contribution {
            involved_at: Some(t(1)),
            ..Contribution::default()
        };
        assert!(c.involved(t(2), &committee));
        let late = t(1) + chrono::Duration::days(i64::from(committee.involvement_days) + 1);
        assert!(!c.involved(late, &committee), "outside the window");
        c.left = true;
        assert!(
            !c.involved(t(2), &committee),
            "a contact who left no longer counts"
        );
    }

    #[test]
    fn the_verdict_names_the_missing_roles_and_the_account() {
        let (_, committee) = rules();
        let none = CommitteeVerdict::of(&BTreeSet::new(), &committee);
        assert_eq!(
            none.describe("Acme"),
            "no decision maker or economic buyer involved at Acme"
        );
        let cfo = CommitteeVerdict::of(&BTreeSet::from([CommitteeRole::EconomicBuyer]), &committee);
        assert_eq!(cfo, CommitteeVerdict::Met(CommitteeRole::EconomicBuyer));
    }

    #[test]
    fn a_customer_account_stays_one_and_the_others_follow_the_rollup() {
        let (accounts, _) = rules();
        let engaged = Rollup {
            contacts: 2,
            engagement: accounts.engaged_points,
            ..Rollup::default()
        };
        assert_eq!(
            next_state(AccountState::Unengaged, &engaged, &accounts),
            AccountState::Engaged
        );
        assert_eq!(
            next_state(AccountState::Customer, &engaged, &accounts),
            AccountState::Customer
        );
        let cold = Rollup::default();
        assert_eq!(
            next_state(AccountState::Engaged, &cold, &accounts),
            AccountState::Unengaged
        );
        for state in AccountState::ALL {
            assert!(
                !state.successors().contains(state),
                "{state}: no self loop in the table"
            );
        }
    }

    fn contribution() -> impl Strategy<Value = Contribution> {
        (0i64..5_000, any::<bool>(), any::<bool>()).prop_map(|(points, qualified, customer)| Contribution {
            engagement: Points(points),
            qualified,
            customer,
            ..Contribution::default()
        })
    }

    #[test]
    fn a_contact_moving_to_another_account_leaves_the_first_and_joins_the_second() {
        let (accounts, _) = rules();
        let engaged = Contribution {
            engagement: accounts.engaged_points,
            ..Contribution::default()
        };
        let (acme, globex) = (
            AccountKey::Domain("acme.fr".into()),
            AccountKey::Domain("globex.com".into()),
        );
        let lead = LeadId::from_uuid(uuid::Uuid::from_u128(1));
        let mut projection = Projection::default();
        let changes = projection.apply(lead, Some((acme.clone(), engaged.clone())), &accounts);
        assert_eq!(
            changes,
            [AccountChange {
                key: acme.clone(),
                from: AccountState::Unengaged,
                to: AccountState::Engaged
            }]
        );
        assert!(
            projection
                .apply(lead, Some((acme.clone(), engaged.clone())), &accounts)
                .is_empty()
        );
        let changes = projection.apply(lead, Some((globex.clone(), engaged)), &accounts);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(projection.accounts[&acme].rollup, Rollup::default());
        assert_eq!(projection.accounts[&acme].state, AccountState::Unengaged);
        assert_eq!(projection.accounts[&globex].rollup.contacts, 1);
        projection.apply(lead, None, &accounts);
        assert_eq!(projection.accounts[&globex].rollup, Rollup::default());
        assert!(projection.contacts.is_empty());
    }

    #[test]
    fn a_lead_contributes_its_capped_engagement_its_role_and_its_last_involvement() {
        let policy = Policy::default_policy();
        let spec = crate::domain::engine::fixtures::cfo();
        let ctx = crate::domain::engine::fixtures::ctx(&policy, t(1));
        let mut lead = crate::domain::engine::create(
            LeadId::from_uuid(uuid::Uuid::from_u128(7)),
            spec.build(),
            &[],
            &ctx,
        )
        .unwrap()
        .lead;
        lead.scores.engagement = Points::from_f64(500.0);
        lead.bant.last_call_at = Some(t(3));
        let (key, contribution) = contact_of(&lead, None, &policy.rules).unwrap();
        assert_eq!(key, AccountKey::Domain("acme-industrie.fr".into()));
        assert_eq!(
            contribution.engagement,
            policy.rules.accounts.contact_engagement_cap
        );
        assert_eq!(contribution.role, Some(CommitteeRole::EconomicBuyer));
        assert_eq!(contribution.involved_at, Some(t(3)));
        let mut erased = lead.clone();
        erased.erased_at = Some(t(4));
        assert_eq!(
            contact_of(&erased, None, &policy.rules),
            None,
            "a pseudonym names no company"
        );
        lead.merged_into = Some(LeadId::from_uuid(uuid::Uuid::from_u128(8)));
        assert_eq!(
            contact_of(&lead, None, &policy.rules),
            None,
            "an alias counts on its winner"
        );
    }

    fn contact_view() -> impl Strategy<Value = Option<(AccountKey, Contribution)>> {
        prop::option::of(
            (0usize..3, contribution())
                .prop_map(|(account, c)| (AccountKey::Domain(format!("company-{account}.fr")), c)),
        )
    }

    proptest! {
        /// Replaying every contact's changes, in any order that keeps each contact's own, ends
        /// where applying only their final views to an empty projection does: the projection
        /// rebuilt from the trail is the projection kept.
        #[test]
        fn replaying_the_changes_rebuilds_the_accounts(
            changes in prop::collection::vec((0u128..6, contact_view()), 0..50),
        ) {
            let (accounts, _) = rules();
            let mut kept = Projection::default();
            for (lead, view) in &changes {
                kept.apply(LeadId::from_uuid(uuid::Uuid::from_u128(*lead)), view.clone(), &accounts);
            }
            let mut rebuilt = Projection::default();
            for (lead, (key, c)) in &kept.contacts {
                rebuilt.apply(*lead, Some((key.clone(), c.clone())), &accounts);
            }
            prop_assert_eq!(&kept.contacts, &rebuilt.contacts);
            for (key, account) in &kept.accounts {
                let other = rebuilt.accounts.get(key).cloned().unwrap_or_default();
                prop_assert_eq!(account.rollup, other.rollup, "{:?}", key);
                // States agree unless the kept one became a customer, which it stays.
                if account.state != AccountState::Customer {
                    prop_assert_eq!(account.state, other.state, "{:?}", key);
                }
            }
        }
    }

    proptest! {
        /// Whatever order the contacts' changes come in, the rollup is the sum over the
        /// contributions as they end: replaying the changes rebuilds the account.
        #[test]
        fn the_rollup_is_the_sum_of_the_final_contributions_in_any_order(
            changes in prop::collection::vec((0usize..8, prop::option::of(contribution())), 0..60),
            seed in any::<u64>(),
        ) {
            // Each contact's changes in its own order; contacts interleaved as `seed` says.
            let mut by_contact: Vec<Vec<Option<Contribution>>> = vec![Vec::new(); 8];
            for (contact, change) in &changes {
                by_contact[*contact].push(change.clone());
            }
            let fold = |order: &[usize]| {
                let mut current: Vec<Option<Contribution>> = vec![None; 8];
                let mut next = [0usize; 8];
                let mut rollup = Rollup::default();
                for &contact in order {
                    let change = by_contact[contact][next[contact]].clone();
                    next[contact] += 1;
                    rollup = rollup.replace(current[contact].as_ref(), change.as_ref());
                    current[contact] = change;
                }
                (rollup, current)
            };
            let in_order: Vec<usize> = changes.iter().map(|(c, _)| *c).collect();
            let mut shuffled = in_order.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let (a, finals) = fold(&in_order);
            let (b, _) = fold(&shuffled);
            prop_assert_eq!(a, b);
            let sum = finals.iter().fold(Rollup::default(), |r, c| r.replace(None, c.as_ref()));
            prop_assert_eq!(a, sum);
        }
    }
}
