//! The values a lead is made of. Constructors validate, so a value that exists is a valid one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names::named_enum;

/// Every time in leadgate: UTC, microsecond precision (the precision both databases keep).
pub type Timestamp = DateTime<Utc>;

/// Truncates a time to the microsecond precision leadgate stores.
pub fn to_storage_precision(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A lead's identifier; its resource name is `leads/{uuid}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(Uuid);

impl LeadId {
    pub const COLLECTION: &'static str = "leads/";
    /// The smallest id, which no lead has.
    pub const NIL: LeadId = LeadId(Uuid::nil());

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Parses `leads/{uuid}`.
    pub fn parse_name(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("is required".into());
        }
        let id = name
            .strip_prefix(Self::COLLECTION)
            .ok_or_else(|| format!("must have the form leads/{{lead_id}}, got {:?}", clip(name)))?;
        Uuid::try_parse(id)
            .map(Self)
            .map_err(|_| format!("lead_id must be a UUID, got {:?}", clip(id)))
    }

    pub fn name(&self) -> String {
        format!("{}{}", Self::COLLECTION, self.0)
    }
}

impl std::fmt::Display for LeadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::COLLECTION, self.0)
    }
}

/// Quotes at most 64 characters of caller input back in an error message.
pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A syntactically valid email address, normalised: the deduplication key, so one mailbox is
/// one lead. Surrounding white space is dropped, letters are lower-cased, and the domain is
/// normalised as [`DomainName::parse`] does (`Claire@Acme.FR.` is `claire@acme.fr`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    /// Validates the syntax (`local@domain.tld`, RFC 5321 lengths, no spaces or quotes) and
    /// normalises.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required".into());
        }
        if email.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address (missing @)".into());
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok {
            return Err("must be an email address (invalid part before @)".into());
        }
        let domain = DomainName::parse(domain)
            .ok()
            .filter(|d| d.0.contains('.'))
            .ok_or_else(|| "must be an email address (invalid domain)".to_string())?;
        // Rebuilt from the normalised domain, so every spelling of one mailbox is one key.
        Ok(Self(format!("{local}@{}", domain.as_str())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// A DNS domain name such as `example.com`, normalised: lower-cased, and without the trailing dot
/// of a fully qualified name (`acme.fr.` is `acme.fr`). Every label is 1 to 63 letters, digits or
/// hyphens, so an empty label (`acme..fr`, `acme.fr..`) is refused rather than guessed at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let domain = raw.trim().to_lowercase();
        // One trailing dot names the DNS root: the same domain.
        let domain = domain.strip_suffix('.').unwrap_or(&domain);
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if valid {
            Ok(Self(domain.to_owned()))
        } else {
            Err("must be a domain name such as example.com".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lower-case code (`software`, `supply_chain`) matched against the policy's profile lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Code(String);

impl Code {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "must be a lower-case code of 1 to {} characters a-z, 0-9, _",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An officially assigned ISO 3166-1 alpha-2 country code, upper-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountryCode(String);

/// The officially assigned ISO 3166-1 alpha-2 codes (ISO/TC 46 N1108, 2023-04-05; the same list
/// as tzdata's `iso3166.tab`), sorted. User-assigned (`AA`, `QM`–`QZ`, `XA`–`XZ`, `ZZ`) and
/// reserved codes (`UK`, `EU`) are not countries.
#[rustfmt::skip]
const ASSIGNED_COUNTRY_CODES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ",
    "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW",
    "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ",
    "EC", "EE", "EG", "EH", "ER", "ES", "ET",
    "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT",
    "GU", "GW", "GY",
    "HK", "HM", "HN", "HR", "HT", "HU",
    "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT",
    "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ",
    "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ",
    "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM",
    "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY",
    "QA",
    "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ",
    "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ",
    "UA", "UG", "UM", "US", "UY", "UZ",
    "VA", "VC", "VE", "VG", "VI", "VN", "VU",
    "WF", "WS",
    "YE", "YT",
    "ZA", "ZM", "ZW",
];

impl CountryCode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = raw.trim().to_ascii_uppercase();
        if ASSIGNED_COUNTRY_CODES.binary_search(&code.as_str()).is_ok() {
            return Ok(Self(code));
        }
        let hint = if code == "UK" {
            " (the United Kingdom is GB)"
        } else {
            ""
        };
        Err(format!(
            "must be an officially assigned ISO 3166-1 alpha-2 country code such as FR{hint}"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number as the caller has it: digits, spaces and `+()-.`.
pub fn parse_phone(raw: &str) -> Result<String, String> {
    let phone = raw.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if phone.len() <= 32
        && (4..=20).contains(&digits)
        && phone.chars().all(|c| c.is_ascii_digit() || " +()-.".contains(c))
    {
        Ok(phone.to_owned())
    } else {
        Err("must be a phone number: 4 to 20 digits, with spaces and +()-. at most 32 characters".into())
    }
}

named_enum! {
    prefix = "SENIORITY_",
    /// How senior a contact is.
    pub enum Seniority {
        IndividualContributor => "INDIVIDUAL_CONTRIBUTOR",
        Manager => "MANAGER",
        Director => "DIRECTOR",
        VicePresident => "VICE_PRESIDENT",
        Executive => "EXECUTIVE",
    }
}

named_enum! {
    prefix = "SOURCE_CHANNEL_",
    /// The channel a lead came through.
    pub enum SourceChannel {
        Website => "WEBSITE",
        Content => "CONTENT",
        Webinar => "WEBINAR",
        TradeShow => "TRADE_SHOW",
        PaidSocial => "PAID_SOCIAL",
        PaidSearch => "PAID_SEARCH",
        Email => "EMAIL",
        Referral => "REFERRAL",
        Partner => "PARTNER",
        Outbound => "OUTBOUND",
        Other => "OTHER",
    }
}

named_enum! {
    prefix = "DISQUALIFICATION_REASON_",
    /// Why a lead was disqualified.
    pub enum DisqualificationReason {
        NoNeed => "NO_NEED",
        NoBudget => "NO_BUDGET",
        PoorFit => "POOR_FIT",
        Unreachable => "UNREACHABLE",
        InvalidContact => "INVALID_CONTACT",
        NotInterested => "NOT_INTERESTED",
        LostToCompetitor => "LOST_TO_COMPETITOR",
        Other => "OTHER",
    }
}

named_enum! {
    prefix = "FIT_GRADE_",
    /// Fit with the ideal customer profile, A best.
    pub enum FitGrade {
        A => "A",
        B => "B",
        C => "C",
        D => "D",
    }
}

named_enum! {
    prefix = "ENGAGEMENT_KIND_",
    /// What a contact did.
    pub enum EngagementKind {
        FormFill => "FORM_FILL",
        ContentDownload => "CONTENT_DOWNLOAD",
        CaseStudyDownload => "CASE_STUDY_DOWNLOAD",
        WebinarRegistered => "WEBINAR_REGISTERED",
        WebinarAttended => "WEBINAR_ATTENDED",
        PricingPageVisit => "PRICING_PAGE_VISIT",
        DemoRequest => "DEMO_REQUEST",
        EmailOpen => "EMAIL_OPEN",
        EmailClick => "EMAIL_CLICK",
        EmailReply => "EMAIL_REPLY",
        TradeShowScan => "TRADE_SHOW_SCAN",
        AdClick => "AD_CLICK",
        Resubmission => "RESUBMISSION",
        Unsubscribe => "UNSUBSCRIBE",
        EmailBounce => "EMAIL_BOUNCE",
    }
}

named_enum! {
    prefix = "CRITERION_STATUS_",
    /// What is known about one BANT criterion.
    pub enum CriterionStatus {
        Unknown => "UNKNOWN",
        Met => "MET",
        NotMet => "NOT_MET",
    }
}

named_enum! {
    prefix = "DECISION_MAKER_INVOLVEMENT_",
    /// Whether the final decision-maker (the person or committee who signs) takes part.
    pub enum DecisionMakerInvolvement {
        /// Takes part, or is the contact.
        Involved => "INVOLVED",
        /// The contact depends on a decision-maker or committee that is not involved yet.
        NotInvolved => "NOT_INVOLVED",
    }
}

named_enum! {
    prefix = "BUDGET_STATUS_",
    /// Where a budget stands.
    pub enum BudgetStatus {
        Approved => "APPROVED",
        Planned => "PLANNED",
        None => "NONE",
    }
}

named_enum! {
    prefix = "CONTACT_CHANNEL_",
    /// How sales tried to reach a contact.
    pub enum ContactChannel {
        Phone => "PHONE",
        Email => "EMAIL",
        Social => "SOCIAL",
        Sms => "SMS",
        Meeting => "MEETING",
    }
}

named_enum! {
    prefix = "CONTACT_OUTCOME_",
    /// What a contact attempt achieved.
    pub enum ContactOutcome {
        Connected => "CONNECTED",
        NoAnswer => "NO_ANSWER",
        Voicemail => "VOICEMAIL",
        MessageSent => "MESSAGE_SENT",
        Replied => "REPLIED",
        MeetingBooked => "MEETING_BOOKED",
        WrongContact => "WRONG_CONTACT",
    }
}

impl ContactOutcome {
    /// Whether the attempt actually reached the person.
    pub fn reached_contact(self) -> bool {
        matches!(self, Self::Connected | Self::Replied | Self::MeetingBooked)
    }
}

named_enum! {
    prefix = "SLA_TRIGGER_",
    /// What started a speed-to-lead clock.
    pub enum SlaTrigger {
        MarketingQualified => "MARKETING_QUALIFIED",
        DemoRequest => "DEMO_REQUEST",
    }
}

/// The person behind a lead. Personal data: never copied into audit entries or logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Email,
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
}

/// The organisation a contact works for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryCode>,
}

/// Where a lead came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub channel: SourceChannel,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
}

/// Everything a submission says about a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub contact: Contact,
    pub company: Company,
    pub source: Source,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_reference: String,
}

impl Profile {
    /// The company's domain, or the email's when none was given.
    pub fn company_domain(&self) -> &str {
        self.company
            .domain
            .as_ref()
            .map_or_else(|| self.contact.email.domain(), DomainName::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mailbox_has_one_spelling() {
        for spelling in [
            "claire@acme.fr",
            "  Claire@ACME.fr ",
            "claire@acme.fr.",
            "CLAIRE@Acme.FR.",
        ] {
            assert_eq!(
                Email::parse(spelling).unwrap().as_str(),
                "claire@acme.fr",
                "{spelling:?}"
            );
        }
        assert_eq!(Email::parse("claire@acme.fr.").unwrap().domain(), "acme.fr");
    }

    #[test]
    fn an_empty_domain_label_is_refused() {
        for bad in [
            "claire@acme.fr..",
            "claire@acme..fr",
            "claire@.acme.fr",
            "claire@acme.fr..",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["acme.fr..", "acme..fr", ".acme.fr", ".", ""] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DomainName::parse("Acme.FR.").unwrap().as_str(), "acme.fr");
    }

    #[test]
    fn country_codes_are_the_officially_assigned_ones() {
        assert_eq!(ASSIGNED_COUNTRY_CODES.len(), 249);
        assert!(
            ASSIGNED_COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]),
            "sorted, for the binary search"
        );
        for good in ["FR", "fr", " de ", "GB", "AX", "SS", "BQ"] {
            assert!(CountryCode::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(CountryCode::parse("fr").unwrap().as_str(), "FR");
        for bad in ["ZZ", "zz", "XK", "AA", "QM", "EU", "UK", "F", "FRA", "", "F\0"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CountryCode::parse("UK").unwrap_err().contains("GB"));
    }
}
