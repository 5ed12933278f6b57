//! The qualification policy: a TOML document, validated into typed rules whose canonical form
//! gives the policy its version.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::account::CommitteeRole;
use super::facts::Points;
use super::values::{EngagementKind, FitGrade, Seniority};

/// The policy that ships with leadgate (the article's rules).
pub const DEFAULT_POLICY: &str = include_str!("../../policy/default.toml");

/// The largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The document's `name`, for people.
    pub name: String,
    /// The first 16 hex digits of the SHA-256 of the canonical rules.
    pub version: String,
    /// The document as written.
    pub content: String,
    pub rules: Rules,
}

/// Everything the engine applies. Its JSON form is canonical and hashed into the version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rules {
    pub marketing_qualified: Points,
    pub fit: FitRules,
    pub engagement: EngagementRules,
    pub qualification: QualificationRules,
    pub sla: SlaRules,
    /// Left out of the canonical form while it is the default, so policies written before it
    /// keep their version.
    #[serde(skip_serializing_if = "ResubmissionRules::is_default")]
    pub resubmission: ResubmissionRules,
    /// Left out while it is the default, as `resubmission`.
    #[serde(skip_serializing_if = "PrivacyRules::is_default")]
    pub privacy: PrivacyRules,
    /// Left out while it is the default, as `resubmission`.
    #[serde(skip_serializing_if = "AccountRules::is_default")]
    pub accounts: AccountRules,
    /// Left out while it is the default, as `resubmission`.
    #[serde(skip_serializing_if = "CommitteeRules::is_default")]
    pub committee: CommitteeRules,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitRules {
    pub grade_a: Points,
    pub grade_b: Points,
    pub grade_c: Points,
    pub rules: Vec<FitRule>,
}

/// A profile field a fit rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitField {
    Industry,
    EmployeeCount,
    Country,
    Seniority,
    JobFunction,
    EmailDomain,
    CompanyDomain,
}

/// How a fit rule matches its field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Matcher {
    AnyOf(BTreeSet<String>),
    Range { min: Option<u32>, max: Option<u32> },
    Known(bool),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitRule {
    pub id: String,
    pub field: FitField,
    pub matcher: Matcher,
    pub points: Points,
    pub max_grade: Option<FitGrade>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngagementRules {
    pub half_life_days: u32,
    pub max_age_days: u32,
    pub kinds: BTreeMap<EngagementKind, KindRule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KindRule {
    pub points: Points,
    /// The most a kind adds up to (for penalties: the least).
    pub cap: Points,
    /// Whether the points halve every `half_life_days`. Either way an event stops counting after
    /// `max_age_days`, unless the kind is held until lifted.
    pub decays: bool,
    /// When not empty, an event of this kind keeps its full points whatever its age, until the
    /// contact does one of these things after it (an unsubscribe stands until the contact comes
    /// back). Left out of the canonical form when empty, so policies without it keep their version.
    #[serde(skip_serializing_if = "KindSet::is_empty")]
    pub lifted_by: KindSet,
}

impl KindRule {
    /// Whether events of this kind hold until a newer signal lifts them.
    pub fn is_held(&self) -> bool {
        !self.lifted_by.is_empty()
    }
}

/// A set of engagement kinds, one bit per kind: scoring tests it for every event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u32);

const _: () = assert!(EngagementKind::ALL.len() <= 32, "a KindSet has a bit per kind");

impl KindSet {
    pub fn contains(&self, kind: EngagementKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    pub fn insert(&mut self, kind: EngagementKind) {
        self.0 |= 1 << kind as u32;
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = EngagementKind> + '_ {
        EngagementKind::ALL.iter().copied().filter(|k| self.contains(*k))
    }
}

impl FromIterator<EngagementKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = EngagementKind>>(kinds: I) -> Self {
        let mut set = KindSet::default();
        kinds.into_iter().for_each(|k| set.insert(k));
        set
    }
}

impl Serialize for KindSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// What happens to a lead that fails a knockout criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Disqualify,
    Nurture,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualificationRules {
    pub bant_required: u8,
    pub need_required: bool,
    pub accepted_fit_grades: BTreeSet<FitGrade>,
    pub on_no_need: Outcome,
    pub on_poor_fit: Outcome,
    pub nurture_days: u32,
    pub revisit_lead_days: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlaRules {
    pub demo_request_first_touch_secs: i64,
    pub marketing_qualified_first_touch_secs: i64,
    pub at_risk_ratio: f64,
    pub min_attempts_before_recycle: u32,
}

/// What a resubmission of a known email does with the contact and company values it brings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileRule {
    /// Fills only the fields the lead does not have yet.
    #[default]
    FillEmpty,
    /// Every value the resubmission gives replaces the lead's.
    NewestWins,
    /// Changes nothing: corrections go through UpdateLead.
    Keep,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResubmissionRules {
    pub profile: ProfileRule,
}

impl ResubmissionRules {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a submission of an email whose lead was erased does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasedEmailRule {
    /// Refuses it (FAILED_PRECONDITION, EMAIL_SUPPRESSED): the person asked to be forgotten.
    #[default]
    Refuse,
    /// Creates a new lead, as a new consent; its submission entry says it followed an erasure.
    Accept,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrivacyRules {
    pub erased_email: ErasedEmailRule,
    /// Erase the personal data of leads no change touched for this many months (0: never).
    pub erase_inactive_after_months: u32,
}

impl PrivacyRules {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Free-mail and ISP domains: an address there names a person, not a company.
pub const FREE_MAIL_DOMAINS: &[&str] = &[
    "163.com",
    "aol.com",
    "free.fr",
    "gmail.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.com",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "live.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "orange.fr",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "sfr.fr",
    "wanadoo.fr",
    "web.de",
    "yahoo.com",
    "yahoo.fr",
    "yandex.ru",
];

/// How leads roll up into accounts (`domain::account`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountRules {
    /// Domains that give no account (normalised).
    pub free_mail_domains: BTreeSet<String>,
    /// The most engagement points one contact adds to its account: one enthusiastic intern does
    /// not heat an account.
    pub contact_engagement_cap: Points,
    /// An account is ENGAGED from this many engagement points.
    pub engaged_points: Points,
}

impl Default for AccountRules {
    fn default() -> Self {
        Self {
            free_mail_domains: FREE_MAIL_DOMAINS.iter().map(|d| (*d).to_owned()).collect(),
            contact_engagement_cap: Points::from_f64(30.0),
            engaged_points: Points::from_f64(40.0),
        }
    }
}

impl AccountRules {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The buying committee: which roles a deal needs, and how a contact's role is inferred.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitteeRules {
    /// Authority is met when a contact in one of these roles is involved (in this order of
    /// preference for the reason).
    pub required_roles: Vec<CommitteeRole>,
    /// A contact counts as involved this many days after it last took part.
    pub involvement_days: u32,
    /// The role of a contact no one gave one, by the first rule it matches.
    pub roles: Vec<RoleRule>,
}

/// A contact matches when its seniority is one of `seniority` and its job function one of
/// `job_function` (an empty list matches anything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleRule {
    pub role: CommitteeRole,
    pub seniority: BTreeSet<Seniority>,
    pub job_function: BTreeSet<String>,
}

impl Default for CommitteeRules {
    fn default() -> Self {
        Self {
            required_roles: vec![CommitteeRole::DecisionMaker, CommitteeRole::EconomicBuyer],
            involvement_days: 90,
            roles: vec![
                RoleRule {
                    role: CommitteeRole::EconomicBuyer,
                    seniority: BTreeSet::from([Seniority::Executive, Seniority::VicePresident]),
                    job_function: BTreeSet::from(["finance".to_owned()]),
                },
                RoleRule {
                    role: CommitteeRole::DecisionMaker,
                    seniority: BTreeSet::from([Seniority::Executive]),
                    job_function: BTreeSet::from(["general_management".to_owned()]),
                },
                RoleRule {
                    role: CommitteeRole::TechnicalEvaluator,
                    seniority: BTreeSet::new(),
                    job_function: BTreeSet::from(["it".to_owned(), "engineering".to_owned()]),
                },
                RoleRule {
                    role: CommitteeRole::Influencer,
                    seniority: BTreeSet::from([
                        Seniority::Executive,
                        Seniority::VicePresident,
                        Seniority::Director,
                    ]),
                    job_function: BTreeSet::new(),
                },
            ],
        }
    }
}

impl CommitteeRules {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One problem in a policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// The dotted key path, when known.
    pub key: String,
    /// 1-based; 0 when unknown.
    pub line: u32,
    /// 1-based; 0 when unknown.
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

// ---- the document as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    name: String,
    thresholds: RawThresholds,
    fit: RawFit,
    engagement: RawEngagement,
    qualification: RawQualification,
    sla: RawSla,
    #[serde(default)]
    resubmission: RawResubmission,
    #[serde(default)]
    privacy: RawPrivacy,
    accounts: Option<RawAccounts>,
    committee: Option<RawCommittee>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    free_mail_domains: Option<Spanned<Vec<String>>>,
    contact_engagement_cap: Option<Spanned<f64>>,
    engaged_points: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommittee {
    required_roles: Option<Spanned<Vec<CommitteeRole>>>,
    involvement_days: Option<Spanned<u32>>,
    roles: Option<Vec<Spanned<RawRoleRule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleRule {
    role: CommitteeRole,
    #[serde(default)]
    seniority: BTreeSet<Seniority>,
    #[serde(default)]
    job_function: BTreeSet<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    #[serde(default)]
    erased_email: ErasedEmailRule,
    #[serde(default)]
    erase_inactive_after_months: u32,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResubmission {
    #[serde(default)]
    profile: ProfileRule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    marketing_qualified: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFit {
    grade_a: Spanned<f64>,
    grade_b: Spanned<f64>,
    grade_c: Spanned<f64>,
    #[serde(default)]
    rules: Vec<Spanned<RawFitRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFitRule {
    id: String,
    field: FitField,
    any_of: Option<Vec<String>>,
    min: Option<u32>,
    max: Option<u32>,
    known: Option<bool>,
    points: f64,
    max_grade: Option<FitGrade>,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngagement {
    half_life_days: Spanned<u32>,
    max_age_days: Spanned<u32>,
    #[serde(default)]
    kinds: BTreeMap<EngagementKind, Spanned<RawKind>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    points: f64,
    cap: Option<f64>,
    /// Defaults to true, or to false for a kind with `lifted_by`.
    decays: Option<bool>,
    lifted_by: Option<Vec<EngagementKind>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQualification {
    bant_required: Spanned<u8>,
    #[serde(default = "yes")]
    need_required: bool,
    accepted_fit_grades: Spanned<Vec<FitGrade>>,
    on_no_need: Outcome,
    on_poor_fit: Outcome,
    nurture_days: Spanned<u32>,
    revisit_lead_days: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    demo_request_first_touch: Spanned<String>,
    marketing_qualified_first_touch: Spanned<String>,
    at_risk_ratio: Spanned<f64>,
    min_attempts_before_recycle: Spanned<u32>,
}

struct Checker<'a> {
    content: &'a str,
    problems: Vec<PolicyProblem>,
}

impl Checker<'_> {
    fn at(&self, offset: usize) -> (u32, u32) {
        let before = &self.content[..offset.min(self.content.len())];
        let line = before.matches('\n').count() as u32 + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
        (line, column)
    }

    fn problem(&mut self, key: &str, span: Option<std::ops::Range<usize>>, message: String) {
        let (line, column) = span.map_or((0, 0), |s| self.at(s.start));
        self.problems.push(PolicyProblem {
            key: key.to_owned(),
            line,
            column,
            message,
        });
    }

    /// A number of points: finite and within ±1,000.
    fn points(&mut self, key: &str, value: &Spanned<f64>) -> Points {
        let v = *value.get_ref();
        if !v.is_finite() || v.abs() > 1000.0 {
            self.problem(
                key,
                Some(value.span()),
                format!("must be a number of points between -1000 and 1000, got {v}"),
            );
        }
        Points::from_f64(v)
    }

    fn duration(&mut self, key: &str, value: &Spanned<String>) -> i64 {
        match super::duration::parse_duration(value.get_ref()) {
            Ok(d) if d.as_secs() > 0 && d.as_secs() <= 30 * 86_400 => d.as_secs() as i64,
            Ok(_) => {
                self.problem(key, Some(value.span()), "must be between 1s and 30d".into());
                0
            }
            Err(why) => {
                self.problem(key, Some(value.span()), why);
                0
            }
        }
    }

    fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        key: &str,
        value: &Spanned<T>,
        min: T,
        max: T,
    ) -> T {
        let v = *value.get_ref();
        if v < min || v > max {
            self.problem(
                key,
                Some(value.span()),
                format!("must be between {min} and {max}, got {v}"),
            );
        }
        v
    }

    fn fit_rule(&mut self, index: usize, raw: &Spanned<RawFitRule>, ids: &mut BTreeSet<String>) -> FitRule {
        let span = raw.span();
        let r = raw.get_ref();
        let key = format!("fit.rules[{index}]");
        let id_ok = !r.id.is_empty()
            && r.id.len() <= 64
            && r.id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !id_ok {
            self.problem(
                &format!("{key}.id"),
                Some(span.clone()),
                "must be 1 to 64 characters a-z, 0-9, . _ -".into(),
            );
        } else if !ids.insert(r.id.clone()) {
            self.problem(
                &format!("{key}.id"),
                Some(span.clone()),
                format!("{:?} is used by another rule", r.id),
            );
        }
        let matcher = match (&r.any_of, r.min.is_some() || r.max.is_some(), r.known) {
            (Some(values), false, None) => {
                for value in values {
                    if let Err(why) = check_fit_value(r.field, value) {
                        self.problem(&format!("{key}.any_of"), Some(span.clone()), why);
                    }
                }
                if r.field == FitField::EmployeeCount {
                    self.problem(
                        &format!("{key}.any_of"),
                        Some(span.clone()),
                        "employee_count rules use min and max".into(),
                    );
                }
                Matcher::AnyOf(values.iter().cloned().collect())
            }
            (None, true, None) => {
                if r.field != FitField::EmployeeCount {
                    self.problem(
                        &format!("{key}.min"),
                        Some(span.clone()),
                        "min and max apply to employee_count only".into(),
                    );
                }
                if let (Some(min), Some(max)) = (r.min, r.max)
                    && min > max
                {
                    self.problem(
                        &format!("{key}.min"),
                        Some(span.clone()),
                        format!("min ({min}) is above max ({max})"),
                    );
                }
                Matcher::Range {
                    min: r.min,
                    max: r.max,
                }
            }
            (None, false, Some(known)) => Matcher::Known(known),
            _ => {
                self.problem(
                    &key,
                    Some(span.clone()),
                    "needs exactly one of any_of, min/max or known".into(),
                );
                Matcher::Known(true)
            }
        };
        let points = self.points(&format!("{key}.points"), &Spanned::new(span.clone(), r.points));
        FitRule {
            id: r.id.clone(),
            field: r.field,
            matcher,
            points,
            max_grade: r.max_grade,
            reason: r.reason.clone(),
        }
    }
}

impl Checker<'_> {
    /// The `[accounts]` section; what it leaves out keeps its default.
    fn accounts(&mut self, raw: Option<RawAccounts>) -> AccountRules {
        let mut rules = AccountRules::default();
        let Some(raw) = raw else { return rules };
        if let Some(domains) = raw.free_mail_domains {
            let mut set = BTreeSet::new();
            for domain in domains.get_ref() {
                match super::account::normalise_domain(domain) {
                    Some(d) => {
                        set.insert(d);
                    }
                    None => self.problem(
                        "accounts.free_mail_domains",
                        Some(domains.span()),
                        format!("{domain:?} is not a domain (such as \"gmail.com\")"),
                    ),
                }
            }
            rules.free_mail_domains = set;
        }
        if let Some(cap) = &raw.contact_engagement_cap {
            rules.contact_engagement_cap = self.points("accounts.contact_engagement_cap", cap);
            if rules.contact_engagement_cap.0 <= 0 {
                self.problem(
                    "accounts.contact_engagement_cap",
                    Some(cap.span()),
                    "must be more than 0 points".into(),
                );
            }
        }
        if let Some(points) = &raw.engaged_points {
            rules.engaged_points = self.points("accounts.engaged_points", points);
            if rules.engaged_points.0 <= 0 {
                self.problem(
                    "accounts.engaged_points",
                    Some(points.span()),
                    "must be more than 0 points".into(),
                );
            }
        }
        rules
    }

    /// The `[committee]` section; what it leaves out keeps its default.
    fn committee(&mut self, raw: Option<RawCommittee>) -> CommitteeRules {
        let mut rules = CommitteeRules::default();
        let Some(raw) = raw else { return rules };
        if let Some(required) = raw.required_roles {
            if required.get_ref().is_empty() {
                self.problem(
                    "committee.required_roles",
                    Some(required.span()),
                    "must name at least one role (such as \"DECISION_MAKER\")".into(),
                );
            }
            let mut seen = BTreeSet::new();
            rules.required_roles = required
                .get_ref()
                .iter()
                .copied()
                .filter(|r| seen.insert(*r))
                .collect();
        }
        if let Some(days) = &raw.involvement_days {
            rules.involvement_days = self.range("committee.involvement_days", days, 1, 3650);
        }
        if let Some(roles) = raw.roles {
            rules.roles = roles
                .into_iter()
                .enumerate()
                .map(|(i, rule)| {
                    let span = rule.span();
                    let rule = rule.into_inner();
                    for function in &rule.job_function {
                        if let Err(why) = check_fit_value(FitField::JobFunction, function) {
                            self.problem(
                                &format!("committee.roles[{i}].job_function"),
                                Some(span.clone()),
                                why,
                            );
                        }
                    }
                    RoleRule {
                        role: rule.role,
                        seniority: rule.seniority,
                        job_function: rule.job_function,
                    }
                })
                .collect();
        }
        rules
    }
}

fn check_fit_value(field: FitField, value: &str) -> Result<(), String> {
    let (ok, expected) = match field {
        FitField::EmployeeCount => (true, String::new()),
        FitField::Seniority => (
            Seniority::from_name(value).is_some(),
            format!(
                "a seniority; use one of {}",
                Seniority::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        FitField::Country => (
            value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()),
            "an upper-case ISO 3166-1 alpha-2 code".into(),
        ),
        FitField::Industry | FitField::JobFunction => (
            super::values::Code::parse(value).is_ok(),
            "a lower-case code (a-z, 0-9, _)".into(),
        ),
        FitField::EmailDomain | FitField::CompanyDomain => (
            super::values::DomainName::parse(value).is_ok_and(|d| d.as_str() == value),
            "a lower-case domain name".into(),
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not {expected}"))
    }
}

impl Policy {
    /// Parses and validates a policy document, reporting every problem found.
    pub fn parse(content: &str) -> Result<Policy, Vec<PolicyProblem>> {
        let mut checker = Checker {
            content,
            problems: Vec::new(),
        };
        if content.len() > MAX_POLICY_BYTES {
            checker.problem(
                "",
                None,
                format!("a policy must be at most {MAX_POLICY_BYTES} bytes"),
            );
            return Err(checker.problems);
        }
        let raw: RawPolicy = match toml::de::Deserializer::parse(content)
            .map_err(|e| (String::new(), e))
            .and_then(|de| {
                serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.into_inner()))
            }) {
            Ok(raw) => raw,
            Err((path, error)) => {
                let key = if path == "." { String::new() } else { path };
                checker.problem(&key, error.span(), error.message().to_owned());
                return Err(checker.problems);
            }
        };

        let marketing_qualified = checker.points(
            "thresholds.marketing_qualified",
            &raw.thresholds.marketing_qualified,
        );
        if marketing_qualified <= Points::ZERO {
            checker.problem(
                "thresholds.marketing_qualified",
                Some(raw.thresholds.marketing_qualified.span()),
                "must be above 0".into(),
            );
        }

        let grade_a = checker.points("fit.grade_a", &raw.fit.grade_a);
        let grade_b = checker.points("fit.grade_b", &raw.fit.grade_b);
        let grade_c = checker.points("fit.grade_c", &raw.fit.grade_c);
        if !(grade_a > grade_b && grade_b > grade_c) {
            checker.problem(
                "fit.grade_a",
                Some(raw.fit.grade_a.span()),
                "grades must decrease: grade_a > grade_b > grade_c".into(),
            );
        }
        let mut ids = BTreeSet::new();
        let fit_rules = raw
            .fit
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| checker.fit_rule(i, r, &mut ids))
            .collect();

        let half_life_days = checker.range(
            "engagement.half_life_days",
            &raw.engagement.half_life_days,
            1,
            3650,
        );
        let max_age_days = checker.range("engagement.max_age_days", &raw.engagement.max_age_days, 1, 3650);
        let mut kinds = BTreeMap::new();
        for (kind, rule) in &raw.engagement.kinds {
            let key = format!("engagement.kinds.{kind}");
            let span = rule.span();
            let r = rule.get_ref();
            let points = checker.points(&format!("{key}.points"), &Spanned::new(span.clone(), r.points));
            let cap = r
                .cap
                .map(|c| checker.points(&format!("{key}.cap"), &Spanned::new(span.clone(), c)))
                .unwrap_or(points);
            let same_sign = (points.0 >= 0) == (cap.0 >= 0);
            if !same_sign || cap.0.abs() < points.0.abs() {
                checker.problem(
                    &format!("{key}.cap"),
                    Some(span.clone()),
                    "must have the sign of points and be at least as large".into(),
                );
            }
            let lifted_by: KindSet = r.lifted_by.iter().flatten().copied().collect();
            if r.lifted_by.is_some() && lifted_by.is_empty() {
                checker.problem(
                    &format!("{key}.lifted_by"),
                    Some(span.clone()),
                    "must name at least one kind; leave it out for a signal that stops counting after \
                     max_age_days"
                        .into(),
                );
            }
            if !lifted_by.is_empty() && r.decays == Some(true) {
                checker.problem(
                    &format!("{key}.decays"),
                    Some(span),
                    "a kind held until lifted keeps its full points: leave decays out or set it to false"
                        .into(),
                );
            }
            kinds.insert(
                *kind,
                KindRule {
                    points,
                    cap,
                    decays: r.decays.unwrap_or(lifted_by.is_empty()),
                    lifted_by,
                },
            );
        }

        let q = &raw.qualification;
        let bant_required = checker.range("qualification.bant_required", &q.bant_required, 1, 4);
        if q.accepted_fit_grades.get_ref().is_empty() {
            checker.problem(
                "qualification.accepted_fit_grades",
                Some(q.accepted_fit_grades.span()),
                "must name at least one grade".into(),
            );
        }
        let qualification = QualificationRules {
            bant_required,
            need_required: q.need_required,
            accepted_fit_grades: q.accepted_fit_grades.get_ref().iter().copied().collect(),
            on_no_need: q.on_no_need,
            on_poor_fit: q.on_poor_fit,
            nurture_days: checker.range("qualification.nurture_days", &q.nurture_days, 1, 3650),
            revisit_lead_days: checker.range("qualification.revisit_lead_days", &q.revisit_lead_days, 0, 365),
        };

        let s = &raw.sla;
        let at_risk_ratio = *s.at_risk_ratio.get_ref();
        if !(at_risk_ratio > 0.0 && at_risk_ratio < 1.0) {
            checker.problem(
                "sla.at_risk_ratio",
                Some(s.at_risk_ratio.span()),
                format!("must be between 0 and 1 (exclusive), got {at_risk_ratio}"),
            );
        }
        let sla = SlaRules {
            demo_request_first_touch_secs: checker
                .duration("sla.demo_request_first_touch", &s.demo_request_first_touch),
            marketing_qualified_first_touch_secs: checker.duration(
                "sla.marketing_qualified_first_touch",
                &s.marketing_qualified_first_touch,
            ),
            at_risk_ratio,
            min_attempts_before_recycle: checker.range(
                "sla.min_attempts_before_recycle",
                &s.min_attempts_before_recycle,
                0,
                100,
            ),
        };

        let accounts = checker.accounts(raw.accounts);
        let committee = checker.committee(raw.committee);

        if !checker.problems.is_empty() {
            return Err(checker.problems);
        }
        let rules = Rules {
            marketing_qualified,
            fit: FitRules {
                grade_a,
                grade_b,
                grade_c,
                rules: fit_rules,
            },
            engagement: EngagementRules {
                half_life_days,
                max_age_days,
                kinds,
            },
            qualification,
            sla,
            resubmission: ResubmissionRules {
                profile: raw.resubmission.profile,
            },
            privacy: PrivacyRules {
                erased_email: raw.privacy.erased_email,
                erase_inactive_after_months: raw.privacy.erase_inactive_after_months,
            },
            accounts,
            committee,
        };
        let canonical = serde_json::to_vec(&rules).expect("policy rules serialise");
        let version = super::hex::to_hex(&Sha256::digest(&canonical)[..8]);
        Ok(Policy {
            name: if raw.name.is_empty() {
                version.clone()
            } else {
                raw.name
            },
            version,
            content: content.to_owned(),
            rules,
        })
    }

    /// The policy that ships with leadgate.
    pub fn default_policy() -> Policy {
        Policy::parse(DEFAULT_POLICY).expect("the shipped default policy is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_valid_and_stable() {
        let a = Policy::default_policy();
        let b = Policy::parse(&format!("# a comment\n{DEFAULT_POLICY}\n")).unwrap();
        assert_eq!(a.version, b.version, "comments do not change the version");
        assert_eq!(a.rules.marketing_qualified, Points(5000));
        assert_eq!(a.rules.sla.demo_request_first_touch_secs, 300);
        assert_eq!(a.rules.sla.min_attempts_before_recycle, 6);
    }

    #[test]
    fn a_changed_rule_changes_the_version() {
        let changed = DEFAULT_POLICY.replace("marketing_qualified = 50", "marketing_qualified = 60");
        assert_ne!(
            Policy::parse(&changed).unwrap().version,
            Policy::default_policy().version
        );
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_path_and_line() {
        let bad = DEFAULT_POLICY.replace("half_life_days = 30", "half_life_dayz = 30");
        let problems = Policy::parse(&bad).unwrap_err();
        assert_eq!(problems.len(), 1);
        let line = bad.lines().position(|l| l.starts_with("half_life_dayz")).unwrap() as u32 + 1;
        assert_eq!(problems[0].line, line, "{problems:?}");
        assert!(problems[0].key.starts_with("engagement"), "{problems:?}");
        assert!(problems[0].message.contains("half_life_dayz"), "{problems:?}");
    }

    #[test]
    fn the_shipped_account_and_committee_sections_are_the_defaults_and_keep_the_version() {
        let policy = Policy::default_policy();
        assert_eq!(policy.rules.accounts, AccountRules::default());
        assert_eq!(policy.rules.committee, CommitteeRules::default());
        let start = DEFAULT_POLICY
            .find("[accounts]")
            .expect("the shipped policy has [accounts]");
        let without = &DEFAULT_POLICY[..start];
        assert_eq!(Policy::parse(without).unwrap().version, policy.version);
        let changed = DEFAULT_POLICY.replace("involvement_days = 90", "involvement_days = 30");
        let changed = Policy::parse(&changed).unwrap();
        assert_eq!(changed.rules.committee.involvement_days, 30);
        assert_ne!(changed.version, policy.version);
    }

    #[test]
    fn bad_account_and_committee_rules_are_reported_with_their_keys() {
        let bad = DEFAULT_POLICY
            .replace("\"163.com\"", "\"not a domain\"")
            .replace("contact_engagement_cap = 30", "contact_engagement_cap = 0")
            .replace(
                "required_roles = [\"DECISION_MAKER\", \"ECONOMIC_BUYER\"]",
                "required_roles = []",
            )
            .replace("involvement_days = 90", "involvement_days = 0")
            .replace(
                "job_function = [\"it\", \"engineering\"]",
                "job_function = [\"IT Dept\"]",
            );
        let problems = Policy::parse(&bad).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "accounts.free_mail_domains",
            "accounts.contact_engagement_cap",
            "committee.required_roles",
            "committee.involvement_days",
            "committee.roles[2].job_function",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        assert!(problems.iter().all(|p| p.line > 0), "{problems:?}");
        let unknown = DEFAULT_POLICY.replace("role = \"INFLUENCER\"", "role = \"INTERN\"");
        let problems = Policy::parse(&unknown).unwrap_err();
        assert!(problems[0].key.starts_with("committee.roles"), "{problems:?}");
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let bad = DEFAULT_POLICY
            .replace("bant_required = 4", "bant_required = 5")
            .replace("at_risk_ratio = 0.5", "at_risk_ratio = 1.5")
            .replace("\"5m\"", "\"5 minutes\"");
        let problems = Policy::parse(&bad).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"qualification.bant_required"), "{keys:?}");
        assert!(keys.contains(&"sla.at_risk_ratio"), "{keys:?}");
        assert!(keys.contains(&"sla.demo_request_first_touch"), "{keys:?}");
        assert!(problems.iter().all(|p| p.line > 0));
    }

    #[test]
    fn a_kind_held_until_lifted_must_name_what_lifts_it_and_not_decay() {
        let with_bounce = |table: &str| {
            let start = DEFAULT_POLICY.find("[engagement.kinds.EMAIL_BOUNCE]").unwrap();
            let end = DEFAULT_POLICY.find("[qualification]").unwrap();
            let policy = format!(
                "{}[engagement.kinds.EMAIL_BOUNCE]\n{table}\n\n{}",
                &DEFAULT_POLICY[..start],
                &DEFAULT_POLICY[end..]
            );
            Policy::parse(&policy)
        };
        let held = with_bounce("points = -20\nlifted_by = [\"EMAIL_OPEN\"]").unwrap();
        let bounce = held.rules.engagement.kinds[&EngagementKind::EmailBounce];
        assert!(!bounce.decays, "a held kind does not decay");
        assert!(bounce.lifted_by.contains(EngagementKind::EmailOpen));

        let problems = with_bounce("points = -20\nlifted_by = []").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "engagement.kinds.EMAIL_BOUNCE.lifted_by");

        let problems = with_bounce("points = -20\ndecays = true\nlifted_by = [\"EMAIL_OPEN\"]").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "engagement.kinds.EMAIL_BOUNCE.decays");

        assert!(
            with_bounce("points = -20\nlifted_by = [\"EMAIL_OPENED\"]").is_err(),
            "an unknown kind is refused"
        );
    }

    #[test]
    fn a_kind_without_lifted_by_keeps_the_policy_version_it_had() {
        // The canonical form leaves out an empty `lifted_by`: policies written before it was
        // added keep their version (and their decisions replay under it).
        let policy = Policy::default_policy();
        let canonical = |kind| serde_json::to_string(&policy.rules.engagement.kinds[&kind]).unwrap();
        assert_eq!(
            canonical(EngagementKind::FormFill),
            r#"{"points":500,"cap":1000,"decays":true}"#,
            "the form every kind had before lifted_by"
        );
        assert!(
            canonical(EngagementKind::Unsubscribe).ends_with(r#""decays":false,"lifted_by":["FORM_FILL","CONTENT_DOWNLOAD","CASE_STUDY_DOWNLOAD","WEBINAR_REGISTERED","DEMO_REQUEST","EMAIL_REPLY","TRADE_SHOW_SCAN","RESUBMISSION"]}"#),
            "{}",
            canonical(EngagementKind::Unsubscribe)
        );
    }

    #[test]
    fn the_resubmission_rule_defaults_to_fill_empty_and_keeps_the_version_it_had() {
        let policy = Policy::default_policy();
        assert_eq!(policy.rules.resubmission.profile, ProfileRule::FillEmpty);
        let without = DEFAULT_POLICY.replace("profile = \"fill_empty\"\n", "");
        assert!(without != DEFAULT_POLICY, "the shipped policy names its rule");
        assert_eq!(Policy::parse(&without).unwrap().version, policy.version);
        let newest = DEFAULT_POLICY.replace("profile = \"fill_empty\"", "profile = \"newest_wins\"");
        let newest = Policy::parse(&newest).unwrap();
        assert_eq!(newest.rules.resubmission.profile, ProfileRule::NewestWins);
        assert_ne!(newest.version, policy.version);
    }

    #[test]
    fn an_unknown_resubmission_rule_is_reported_with_its_path() {
        let bad = DEFAULT_POLICY.replace("profile = \"fill_empty\"", "profile = \"latest\"");
        let problems = Policy::parse(&bad).unwrap_err();
        assert_eq!(problems[0].key, "resubmission.profile", "{problems:?}");
        assert!(problems[0].message.contains("newest_wins"), "{problems:?}");
    }
}
