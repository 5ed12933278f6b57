//! The audit trail's entries and their hash chain.
//!
//! An entry is hashed with SHA-256 over a domain-separation tag, its position, the previous
//! entry's hash and a length-prefixed encoding of every field, so that changing, removing,
//! inserting or reordering entries breaks the chain at the first entry concerned.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::facts::{Reason, Scores, SlaClock};
use super::hex::{from_hex, to_hex};
use super::lifecycle::LeadState;
use super::names::named_enum;
use super::values::{DisqualificationReason, LeadId, SourceChannel, Timestamp};

/// The chaining algorithm's name; stored with every digest so it can evolve.
pub const HASH_ALGORITHM: &str = "leadgate-audit-v1";

/// The hash that precedes position 1.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The actor of changes leadgate makes by itself.
pub const ENGINE_ACTOR: &str = "engine";

named_enum! {
    prefix = "AUDIT_EVENT_KIND_",
    /// What an audit entry records.
    pub enum AuditKind {
        LeadSubmitted => "LEAD_SUBMITTED",
        LeadResubmitted => "LEAD_RESUBMITTED",
        EngagementRecorded => "ENGAGEMENT_RECORDED",
        DiscoveryCallRecorded => "DISCOVERY_CALL_RECORDED",
        ContactAttemptRecorded => "CONTACT_ATTEMPT_RECORDED",
        StateOverridden => "STATE_OVERRIDDEN",
        OverrideReleased => "OVERRIDE_RELEASED",
        LeadConverted => "LEAD_CONVERTED",
        SlaBreached => "SLA_BREACHED",
        NurtureRevisited => "NURTURE_REVISITED",
        PolicyActivated => "POLICY_ACTIVATED",
        LeadUpdated => "LEAD_UPDATED",
        LeadErased => "LEAD_ERASED",
        LeadsMerged => "LEADS_MERGED",
        LeadMergedInto => "LEAD_MERGED_INTO",
    }
}

/// The part of an entry that is not an indexed column: inputs, scores and reasons. Personal data
/// never goes here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditBody {
    /// The inputs of the change, as JSON.
    #[serde(default)]
    pub inputs: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores_before: Option<Scores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores_after: Option<Scores>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_state: Option<LeadState>,
    /// The speed-to-lead clock after the change (reports read clock starts and touches here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaClock>,
    /// Why the lead is disqualified, when it is after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disqualification: Option<DisqualificationReason>,
}

/// One change as recorded. `body` is canonical JSON text and is hashed as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub lead: Option<LeadId>,
    pub kind: AuditKind,
    pub recorded_at: Timestamp,
    pub actor: String,
    pub request_id: Option<String>,
    pub state_before: Option<LeadState>,
    pub state_after: Option<LeadState>,
    pub source_channel: Option<SourceChannel>,
    pub policy_version: String,
    pub body: String,
}

impl AuditEntry {
    /// Parses the body; a body that does not parse is reported as empty (verification, not
    /// parsing, is what detects tampering).
    pub fn parsed_body(&self) -> AuditBody {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// Serialises a body the one way it is stored and hashed.
pub fn encode_body(body: &AuditBody) -> String {
    // serde_json keeps struct fields in declaration order and object keys sorted (no
    // `preserve_order`), so equal bodies always give equal text.
    serde_json::to_string(body).expect("an audit body always serialises")
}

/// An entry with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainedEntry {
    pub position: i64,
    pub entry: AuditEntry,
    pub previous_hash: [u8; 32],
    pub hash: [u8; 32],
    /// The latest `recorded_at` of this entry and every one before it. It never decreases along
    /// the chain, so "recorded at or after T" starts at the first position where it reaches T:
    /// time filters become position ranges. Derived from hashed fields, and checked.
    pub time_max: Timestamp,
    /// The sequencer's seal over this link (`None` for entries chained before seals existed).
    pub seal: Option<Seal>,
}

/// Where the chain ends: what the next entry links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTip {
    pub head: ChainHead,
    /// The last entry's `time_max`; `None` before the first entry.
    pub time_max: Option<Timestamp>,
}

impl ChainTip {
    pub const GENESIS: ChainTip = ChainTip {
        head: ChainHead::EMPTY,
        time_max: None,
    };

    /// The tip after `entry`.
    pub fn of(entry: &ChainedEntry) -> Self {
        ChainTip {
            head: ChainHead {
                position: entry.position,
                hash: entry.hash,
            },
            time_max: Some(entry.time_max),
        }
    }

    fn time_max_after(&self, entry: &AuditEntry) -> Timestamp {
        self.time_max
            .map_or(entry.recorded_at, |t| t.max(entry.recorded_at))
    }
}

/// The head of the chain: the last position and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub position: i64,
    pub hash: [u8; 32],
}

impl ChainHead {
    pub const EMPTY: ChainHead = ChainHead {
        position: 0,
        hash: GENESIS_HASH,
    };

    /// `position:hexhash`, the form people keep and give back.
    pub fn token(&self) -> String {
        format!("{}:{}", self.position, to_hex(&self.hash))
    }

    /// Parses [`ChainHead::token`].
    pub fn parse_token(token: &str) -> Result<ChainHead, String> {
        let (position, hash) = token
            .split_once(':')
            .ok_or_else(|| "must have the form POSITION:HASH".to_string())?;
        let position = position
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| "position must be a non-negative integer".to_string())?;
        Ok(ChainHead {
            position,
            hash: from_hex(hash)?,
        })
    }
}

/// The chain hash of `entry` at `position` after `previous`.
pub fn chain_hash(position: i64, previous: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_ALGORITHM.as_bytes());
    h.update([0u8]);
    h.update(position.to_be_bytes());
    h.update(previous);
    feed_fields(entry, |bytes| h.update(bytes));
    h.finalize().into()
}

/// Feeds every field of an entry, length-prefixed, to a hash or a MAC: one encoding for the chain
/// and the seals, so that no two different entries encode alike.
fn feed_fields(entry: &AuditEntry, mut update: impl FnMut(&[u8])) {
    let mut field = |bytes: Option<&[u8]>| match bytes {
        None => update(&[0u8]),
        Some(b) => {
            update(&[1u8]);
            update(&(b.len() as u64).to_be_bytes());
            update(b);
        }
    };
    let lead = entry.lead.map(|l| *l.as_uuid().as_bytes());
    field(lead.as_ref().map(|b| b.as_slice()));
    field(Some(entry.kind.as_str().as_bytes()));
    field(Some(&entry.recorded_at.timestamp_micros().to_be_bytes()));
    field(Some(entry.actor.as_bytes()));
    field(entry.request_id.as_deref().map(str::as_bytes));
    field(entry.state_before.map(|s| s.as_str().as_bytes()));
    field(entry.state_after.map(|s| s.as_str().as_bytes()));
    field(entry.source_channel.map(|s| s.as_str().as_bytes()));
    field(Some(entry.policy_version.as_bytes()));
    field(Some(entry.body.as_bytes()));
}

/// Links entries after `tip`, in the order given.
pub fn link(tip: ChainTip, entries: Vec<AuditEntry>) -> Vec<ChainedEntry> {
    let mut previous = tip;
    entries
        .into_iter()
        .map(|entry| {
            let position = previous.head.position + 1;
            let hash = chain_hash(position, &previous.head.hash, &entry);
            let chained = ChainedEntry {
                position,
                time_max: previous.time_max_after(&entry),
                entry,
                previous_hash: previous.head.hash,
                hash,
                seal: None,
            };
            previous = ChainTip::of(&chained);
            chained
        })
        .collect()
}

/// Links entries after `tip` and seals each link with the signing key.
pub fn link_and_seal(tip: ChainTip, entries: Vec<AuditEntry>, keys: &AuditKeys) -> Vec<ChainedEntry> {
    let mut chained = link(tip, entries);
    for c in &mut chained {
        c.seal = Some(keys.seal_link(c.position, &c.hash));
    }
    chained
}

// ---- seals: proof that leadgate wrote an entry ----

/// The algorithm of every seal.
pub const SEAL_ALGORITHM: &str = "hmac-sha256";

type HmacSha256 = Hmac<Sha256>;

/// A keyed MAC over an entry (or a link of the chain), with the id of the key that made it, so
/// that keys can rotate. Only holders of the key can make one: rows written into the database by
/// anyone else carry none that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub key_id: String,
    pub tag: [u8; 32],
}

/// Why a seal does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealProblem {
    #[error("it carries no seal")]
    Missing,
    #[error("its seal names key {0:?}, which this server does not have")]
    UnknownKey(String),
    #[error("its seal does not match its content")]
    Mismatch,
}

/// The keys that seal the audit trail: the first configured signs; every one (retired ones
/// included) verifies.
#[derive(Clone)]
pub struct AuditKeys {
    signing: String,
    keys: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("AuditKeys")
            .field("signing", &self.signing)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

impl AuditKeys {
    /// Keys as `id:base64,id:base64,...` (the first signs). Ids are 1 to 32 characters of
    /// a-z, A-Z, 0-9, `_`, `-`, `.`; keys are at least 32 bytes.
    pub fn parse(text: &str) -> Result<AuditKeys, String> {
        use base64::Engine as _;
        let mut keys = BTreeMap::new();
        let mut signing = None;
        for (i, item) in text
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let (id, key) = item
                .split_once(':')
                .ok_or_else(|| format!("key {}: expected ID:BASE64", i + 1))?;
            let id = id.trim();
            let valid_id = (1..=32).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !valid_id {
                return Err(format!(
                    "key {}: the id must be 1 to 32 characters of A-Z a-z 0-9 _ - .",
                    i + 1
                ));
            }
            let secret = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|_| format!("key {id}: not base64"))?;
            if secret.len() < MIN_KEY_BYTES {
                return Err(format!("key {id}: must be at least {MIN_KEY_BYTES} bytes"));
            }
            if keys.insert(id.to_owned(), secret).is_some() {
                return Err(format!("key {id}: given twice"));
            }
            signing.get_or_insert_with(|| id.to_owned());
        }
        let signing = signing.ok_or("no key given")?;
        Ok(AuditKeys { signing, keys })
    }

    /// The id of the key that seals new entries.
    pub fn signing_key_id(&self) -> &str {
        &self.signing
    }

    fn mac(&self, key_id: &str) -> Option<HmacSha256> {
        self.keys
            .get(key_id)
            .map(|key| HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    fn sign(&self, feed: impl FnOnce(&mut HmacSha256)) -> Seal {
        let mut mac = self
            .mac(&self.signing)
            .expect("the signing key is one of the keys");
        feed(&mut mac);
        Seal {
            key_id: self.signing.clone(),
            tag: mac.finalize().into_bytes().into(),
        }
    }

    fn check(&self, seal: Option<&Seal>, feed: impl FnOnce(&mut HmacSha256)) -> Result<(), SealProblem> {
        let seal = seal.ok_or(SealProblem::Missing)?;
        let mut mac = self
            .mac(&seal.key_id)
            .ok_or_else(|| SealProblem::UnknownKey(seal.key_id.clone()))?;
        feed(&mut mac);
        // Constant time.
        mac.verify_slice(&seal.tag).map_err(|_| SealProblem::Mismatch)
    }

    /// The keyed hashes of an erased email, one per key, the signing key's first: the
    /// suppression list holds the first; a lookup tries them all, so the list survives a key
    /// rotation as long as the retired key stays listed (as it must, to verify old seals).
    pub fn email_hashes(&self, email: &str) -> Vec<[u8; 32]> {
        let ids = std::iter::once(self.signing.as_str()).chain(
            self.keys
                .keys()
                .map(String::as_str)
                .filter(|id| *id != self.signing),
        );
        ids.filter_map(|id| self.mac(id))
            .map(|mut mac| {
                mac.update(b"leadgate-suppressed-email-v1\0");
                mac.update(email.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    /// Seals an entry as it is written: proves that leadgate wrote it.
    pub fn seal_entry(&self, entry: &AuditEntry) -> Seal {
        self.sign(|mac| feed_entry_seal(mac, entry))
    }

    pub fn check_entry(&self, entry: &AuditEntry, seal: Option<&Seal>) -> Result<(), SealProblem> {
        self.check(seal, |mac| feed_entry_seal(mac, entry))
    }

    /// Seals a link of the chain as it is made: proves that leadgate's sequencer put this entry
    /// at this position (the chain hash covers the position, the previous hash and the entry).
    pub fn seal_link(&self, position: i64, hash: &[u8; 32]) -> Seal {
        self.sign(|mac| feed_link_seal(mac, position, hash))
    }

    pub fn check_link(&self, position: i64, hash: &[u8; 32], seal: Option<&Seal>) -> Result<(), SealProblem> {
        self.check(seal, |mac| feed_link_seal(mac, position, hash))
    }
}

fn feed_entry_seal(mac: &mut HmacSha256, entry: &AuditEntry) {
    mac.update(b"leadgate-entry-seal-v1\0");
    feed_fields(entry, |bytes| mac.update(bytes));
}

fn feed_link_seal(mac: &mut HmacSha256, position: i64, hash: &[u8; 32]) {
    mac.update(b"leadgate-link-seal-v1\0");
    mac.update(&position.to_be_bytes());
    mac.update(hash);
}

/// An entry with the seal it was written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedEntry {
    pub entry: AuditEntry,
    pub seal: Seal,
}

impl AuditKeys {
    /// Seals entries as they are written.
    pub fn seal_all(&self, entries: &[AuditEntry]) -> Vec<SealedEntry> {
        entries
            .iter()
            .map(|entry| SealedEntry {
                seal: self.seal_entry(entry),
                entry: entry.clone(),
            })
            .collect()
    }
}

/// Why the sequencer set a row of the inbox aside instead of chaining it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A row this version cannot read (a kind or state it does not know: written by a newer
    /// version, or by hand).
    #[error("it cannot be read: {0}")]
    Undecodable(String),
    /// No seal, and no upgrade window open in which unsealed rows are accepted.
    #[error("it carries no seal: leadgate did not write it")]
    Unsealed,
    #[error("{0}: leadgate did not write it")]
    Unauthentic(SealProblem),
    /// Its inbox id was chained already: a copy of an entry that is in the trail.
    #[error("its inbox id {0} is already in the trail")]
    Duplicate(i64),
}

impl Refusal {
    /// The reason as stored and listed.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Undecodable(_) => "UNDECODABLE",
            Refusal::Unsealed => "UNSEALED",
            Refusal::Unauthentic(_) => "UNAUTHENTIC",
            Refusal::Duplicate(_) => "DUPLICATE",
        }
    }
}

/// What the sequencer lets into the chain: entries leadgate sealed when it wrote them.
#[derive(Clone, Copy, Debug)]
pub struct Admission<'a> {
    pub keys: &'a AuditKeys,
    /// Until then, rows without a seal are chained too: rows written by an earlier version of
    /// leadgate while an upgrade rolls out. `None`: never.
    pub accept_unsealed_until: Option<Timestamp>,
    pub now: Timestamp,
}

impl Admission<'_> {
    pub fn admit(&self, entry: &AuditEntry, seal: Option<&Seal>) -> Result<(), Refusal> {
        match seal {
            None if self.accept_unsealed_until.is_some_and(|until| self.now < until) => Ok(()),
            None => Err(Refusal::Unsealed),
            Some(_) => self.keys.check_entry(entry, seal).map_err(Refusal::Unauthentic),
        }
    }
}

// ---- resuming a verification over several calls ----

/// Where a verification that stopped early resumes, handed to the caller as an opaque token. It
/// holds the last entry verified as it was checked (position, hash, time index), so that the next
/// call anchors on what was verified rather than on that entry's stored row; the end of the range
/// and the expected digest, fixed when the verification started; and the count so far. It is
/// sealed with the audit keys: a server continues only from tips it verified itself, and reports
/// only counts it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// Binds the token to the request that started the verification ([`verify_request_fingerprint`]).
    pub request: String,
    /// The last position of the range.
    pub end: i64,
    pub expected: Option<ChainHead>,
    /// The last entry verified.
    pub tip: ChainTip,
    /// Entries checked so far.
    pub checked: i64,
}

/// The longest resume token accepted; the server's own are about 400 characters.
const MAX_RESUME_TOKEN: usize = 1024;

/// The fields of a resume token, short-named as page tokens are.
#[derive(Serialize, Deserialize)]
struct ResumeFields {
    /// The request's fingerprint.
    q: String,
    /// The range's end.
    e: i64,
    /// The expected digest, as `POSITION:HASH`.
    d: Option<String>,
    /// The last position verified, its hash (hex) and time index (µs).
    p: i64,
    h: String,
    t: Option<i64>,
    /// Entries checked so far.
    c: i64,
}

/// A token as sent: the fields, the id of the key that sealed them and the seal.
#[derive(Serialize, Deserialize)]
struct SealedResume {
    v: ResumeFields,
    /// The id of the key that sealed it (keys rotate).
    k: String,
    /// The seal, hex.
    s: String,
}

/// Identifies a verification request by what the caller asked (before defaults are applied), so a
/// token is only accepted back with the same range and digest.
pub fn verify_request_fingerprint(start: i64, end: i64, expected: Option<ChainHead>) -> String {
    let digest = Sha256::new()
        .chain_update(start.to_be_bytes())
        .chain_update(end.to_be_bytes())
        .chain_update(expected.map(|d| d.token()).unwrap_or_default())
        .finalize();
    to_hex(&digest[..8])
}

impl ResumePoint {
    /// The opaque token, sealed with the signing key.
    pub fn encode(&self, keys: &AuditKeys) -> String {
        use base64::Engine as _;
        let fields = ResumeFields {
            q: self.request.clone(),
            e: self.end,
            d: self.expected.map(|d| d.token()),
            p: self.tip.head.position,
            h: to_hex(&self.tip.head.hash),
            t: self.tip.time_max.map(|t| t.timestamp_micros()),
            c: self.checked,
        };
        let seal = keys.sign(|mac| feed_resume_seal(mac, &fields));
        let token = SealedResume {
            v: fields,
            k: seal.key_id,
            s: to_hex(&seal.tag),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&token).expect("a resume token serialises"))
    }

    /// Reads a token given back by a caller of the request identified by `request`. The error is
    /// for the caller.
    pub fn decode(token: &str, request: &str, keys: &AuditKeys) -> Result<ResumePoint, String> {
        use base64::Engine as _;
        let invalid = || "is not a token this verification returned".to_string();
        if token.len() > MAX_RESUME_TOKEN {
            return Err(invalid());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let sealed: SealedResume = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let seal = Seal {
            key_id: sealed.k,
            tag: from_hex(&sealed.s).map_err(|_| invalid())?,
        };
        keys.check(Some(&seal), |mac| feed_resume_seal(mac, &sealed.v))
            .map_err(|_| invalid())?;
        let fields = sealed.v;
        if fields.q != request {
            return Err("was issued for another start_position, end_position or expected_digest".into());
        }
        let expected = match fields.d {
            Some(d) => Some(ChainHead::parse_token(&d).map_err(|_| invalid())?),
            None => None,
        };
        let time_max = match fields.t {
            Some(t) => Some(chrono::DateTime::from_timestamp_micros(t).ok_or_else(invalid)?),
            None => None,
        };
        Ok(ResumePoint {
            request: fields.q,
            end: fields.e,
            expected,
            tip: ChainTip {
                head: ChainHead {
                    position: fields.p,
                    hash: from_hex(&fields.h).map_err(|_| invalid())?,
                },
                time_max,
            },
            checked: fields.c,
        })
    }
}

impl ResumePoint {
    /// Checks that the stored row of the last entry verified is still the entry that was verified:
    /// same position, same hash, and a content that gives that hash after its stored link.
    pub fn check_anchor(&self, stored: Option<&ChainedEntry>) -> Result<(), Finding> {
        let position = self.tip.head.position;
        let Some(entry) = stored.filter(|e| e.position == position) else {
            return Err(Finding {
                position,
                problem: Problem::MissingEntry,
                message: format!("entry {position}, verified by an earlier call, is missing"),
            });
        };
        let unchanged = entry.hash == self.tip.head.hash
            && chain_hash(position, &entry.previous_hash, &entry.entry) == entry.hash
            && Some(entry.time_max) == self.tip.time_max;
        if unchanged {
            Ok(())
        } else {
            Err(Finding {
                position,
                problem: Problem::HashMismatch,
                message: format!("entry {position} changed since an earlier call verified it"),
            })
        }
    }
}

fn feed_resume_seal(mac: &mut HmacSha256, fields: &ResumeFields) {
    mac.update(b"leadgate-verify-resume-v1\0");
    // serde_json writes struct fields in declaration order: one text for equal fields.
    mac.update(&serde_json::to_vec(fields).expect("resume fields serialise"));
}

named_enum! {
    prefix = "VERIFICATION_PROBLEM_",
    /// What can be wrong in the chain.
    pub enum Problem {
        HashMismatch => "HASH_MISMATCH",
        BrokenLink => "BROKEN_LINK",
        MissingEntry => "MISSING_ENTRY",
        Truncated => "TRUNCATED",
        DigestMismatch => "DIGEST_MISMATCH",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The first place where the chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub position: i64,
    pub problem: Problem,
    pub message: String,
}

/// Checks chained entries one by one, in position order, from an anchor: the entry just before
/// the first one checked (the genesis tip to start at position 1).
#[derive(Clone, Debug)]
pub struct Verifier {
    previous: ChainTip,
    expected: Option<ChainHead>,
    /// The keys to check seals with, and the first position that must carry one.
    seals: Option<(AuditKeys, i64)>,
    pub checked: i64,
}

impl Verifier {
    pub fn new(anchor: ChainTip, expected: Option<ChainHead>) -> Self {
        Self {
            previous: anchor,
            expected,
            seals: None,
            checked: 0,
        }
    }

    /// Also checks the seal of every link from `sealed_from` on (entries chained earlier, before
    /// leadgate sealed its trail, carry none).
    pub fn with_seals(mut self, keys: AuditKeys, sealed_from: i64) -> Self {
        self.seals = Some((keys, sealed_from));
        self
    }

    /// The last entry checked (the anchor before the first).
    pub fn tip(&self) -> ChainTip {
        self.previous
    }

    /// The next position the verifier expects.
    pub fn next_position(&self) -> i64 {
        self.previous.head.position + 1
    }

    /// Checks the next entry.
    pub fn check(&mut self, chained: &ChainedEntry) -> Result<(), Finding> {
        let position = self.next_position();
        if chained.position != position {
            return Err(Finding {
                position,
                problem: Problem::MissingEntry,
                message: format!(
                    "entry {position} is missing (the next one is {})",
                    chained.position
                ),
            });
        }
        if chained.previous_hash != self.previous.head.hash {
            return Err(Finding {
                position,
                problem: Problem::BrokenLink,
                message: format!(
                    "entry {position} does not link to entry {}: an entry was inserted, removed or moved",
                    self.previous.head.position
                ),
            });
        }
        if chain_hash(position, &self.previous.head.hash, &chained.entry) != chained.hash {
            return Err(Finding {
                position,
                problem: Problem::HashMismatch,
                message: format!("entry {position} does not match its hash: its content was changed"),
            });
        }
        if chained.time_max != self.previous.time_max_after(&chained.entry) {
            return Err(Finding {
                position,
                problem: Problem::HashMismatch,
                message: format!(
                    "entry {position}'s time index does not follow from the entries up to it: it was changed"
                ),
            });
        }
        if let Some((keys, sealed_from)) = &self.seals
            && (position >= *sealed_from || chained.seal.is_some())
            && let Err(problem) = keys.check_link(position, &chained.hash, chained.seal.as_ref())
        {
            return Err(Finding {
                position,
                problem: Problem::Unauthenticated,
                message: format!("entry {position} is not one leadgate chained: {problem}"),
            });
        }
        if let Some(expected) = self.expected.filter(|e| e.position == position)
            && expected.hash != chained.hash
        {
            return Err(Finding {
                position,
                problem: Problem::DigestMismatch,
                message: format!(
                    "entry {position} is not the one the digest recorded: history was rewritten"
                ),
            });
        }
        self.previous = ChainTip::of(chained);
        self.checked += 1;
        Ok(())
    }

    /// Checks that nothing is missing up to `end` once the entries ran out.
    pub fn finish(&self, end: i64) -> Result<(), Finding> {
        let position = self.next_position();
        if let Some(expected) = self.expected.filter(|e| e.position >= position) {
            return Err(Finding {
                position,
                problem: Problem::Truncated,
                message: format!(
                    "the trail ends at {} but the digest recorded entry {}: it was truncated",
                    self.previous.head.position, expected.position
                ),
            });
        }
        if position <= end {
            return Err(Finding {
                position,
                problem: Problem::MissingEntry,
                message: format!("entries {position} to {end} are missing"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            lead: None,
            kind: AuditKind::PolicyActivated,
            recorded_at: chrono::DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap(),
            actor: "engine".into(),
            request_id: None,
            state_before: None,
            state_after: None,
            source_channel: None,
            policy_version: "v".into(),
            body: format!("{{\"n\":{n}}}"),
        }
    }

    fn chain(n: i64) -> Vec<ChainedEntry> {
        link(ChainTip::GENESIS, (1..=n).map(entry).collect())
    }

    fn verify(entries: &[ChainedEntry], expected: Option<ChainHead>, end: i64) -> Result<i64, Finding> {
        let mut v = Verifier::new(ChainTip::GENESIS, expected);
        for e in entries {
            v.check(e)?;
        }
        v.finish(end)?;
        Ok(v.checked)
    }

    fn parse_keys(text: &str) -> AuditKeys {
        AuditKeys::parse(text).unwrap()
    }

    const KEYS: &str =
        "k2:a2V5LXR3by1rZXktdHdvLWtleS10d28ta2V5LXR3by1r, k1:a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS1r";

    #[test]
    fn an_entry_sealed_with_a_known_key_is_admitted_and_anything_else_is_refused() {
        let keys = parse_keys(KEYS);
        assert_eq!(keys.signing_key_id(), "k2", "the first key seals");
        let e = entry(1);
        let seal = keys.seal_entry(&e);
        let admission = Admission {
            keys: &keys,
            accept_unsealed_until: None,
            now: e.recorded_at,
        };
        assert_eq!(admission.admit(&e, Some(&seal)), Ok(()));
        // A retired key still verifies what it sealed.
        let retired = parse_keys("k1:a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS1r").seal_entry(&e);
        assert_eq!(admission.admit(&e, Some(&retired)), Ok(()));
        let mut changed = e.clone();
        changed.actor = "mallory".into();
        assert_eq!(
            admission.admit(&changed, Some(&seal)),
            Err(Refusal::Unauthentic(SealProblem::Mismatch))
        );
        let unknown = Seal {
            key_id: "k9".into(),
            ..seal.clone()
        };
        assert_eq!(
            admission.admit(&e, Some(&unknown)),
            Err(Refusal::Unauthentic(SealProblem::UnknownKey("k9".into())))
        );
        assert_eq!(admission.admit(&e, None), Err(Refusal::Unsealed));
        let upgrading = Admission {
            accept_unsealed_until: Some(e.recorded_at + chrono::Duration::hours(1)),
            ..admission
        };
        assert_eq!(upgrading.admit(&e, None), Ok(()), "during an upgrade window");
        assert_eq!(
            upgrading.admit(&changed, Some(&seal)),
            Err(Refusal::Unauthentic(SealProblem::Mismatch)),
            "a seal present is always checked"
        );
    }

    #[test]
    fn bad_key_settings_are_refused_and_secrets_never_printed() {
        for bad in [
            "",
            "k1",
            "k1:not base64!",
            "k1:c2hvcnQ=",
            "bad id:a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS1r",
            "k1:a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS1r,k1:a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZS1r",
        ] {
            assert!(AuditKeys::parse(bad).is_err(), "{bad:?}");
        }
        let printed = format!("{:?}", parse_keys(KEYS));
        assert!(printed.contains("k1") && !printed.contains("a2V5"), "{printed}");
    }

    #[test]
    fn links_from_the_first_sealed_position_must_carry_a_seal_that_holds() {
        let keys = parse_keys(KEYS);
        let mut chain = link_and_seal(ChainTip::GENESIS, (1..=4).map(entry).collect(), &keys);
        chain[0].seal = None; // chained before seals existed
        let check = |chain: &[ChainedEntry], sealed_from: i64| {
            let mut v = Verifier::new(ChainTip::GENESIS, None).with_seals(keys.clone(), sealed_from);
            chain.iter().try_for_each(|c| v.check(c))
        };
        assert_eq!(check(&chain, 2), Ok(()));
        let f = check(&chain, 1).unwrap_err();
        assert_eq!((f.position, f.problem), (1, Problem::Unauthenticated));
        // A link appended by someone without the key: its hash is right, its seal is not.
        let mut forged = chain.clone();
        forged[3].seal = Some(Seal {
            key_id: "k2".into(),
            tag: [7; 32],
        });
        let f = check(&forged, 2).unwrap_err();
        assert_eq!((f.position, f.problem), (4, Problem::Unauthenticated));
        forged[3].seal = None;
        assert_eq!(check(&forged, 2).unwrap_err().position, 4);
    }

    #[test]
    fn the_time_index_never_decreases_and_is_checked() {
        let mut entries: Vec<AuditEntry> = (1..=4).map(entry).collect();
        entries[2].recorded_at = entries[0].recorded_at; // committed late, recorded early
        let c = link(ChainTip::GENESIS, entries);
        let maxima: Vec<_> = c.iter().map(|e| e.time_max).collect();
        assert!(maxima.windows(2).all(|w| w[0] <= w[1]));
        assert!(c.iter().all(|e| e.entry.recorded_at <= e.time_max));
        assert_eq!(c[2].time_max, c[1].time_max);
        let mut lowered = c.clone();
        lowered[3].time_max = lowered[0].time_max;
        let f = verify(&lowered, None, 4).unwrap_err();
        assert_eq!((f.position, f.problem), (4, Problem::HashMismatch));
    }

    fn resume_point(c: &[ChainedEntry]) -> ResumePoint {
        ResumePoint {
            request: verify_request_fingerprint(0, 0, None),
            end: 6,
            expected: Some(ChainHead {
                position: 6,
                hash: c[5].hash,
            }),
            tip: ChainTip::of(&c[2]),
            checked: 3,
        }
    }

    #[test]
    fn a_resume_token_reads_back_as_issued_only_for_its_request_and_keys() {
        let keys = parse_keys(KEYS);
        let c = chain(6);
        let point = resume_point(&c);
        let token = point.encode(&keys);
        assert!(token.len() < MAX_RESUME_TOKEN, "{}", token.len());
        let request = verify_request_fingerprint(0, 0, None);
        assert_eq!(ResumePoint::decode(&token, &request, &keys), Ok(point.clone()));
        // A retired key still reads the tokens it sealed.
        let rotated = parse_keys(&format!("k3:a2V5LXRocmVlLWtleS10aHJlZS1rZXktdGhyZWUta2V5,{KEYS}"));
        assert_eq!(ResumePoint::decode(&token, &request, &rotated), Ok(point.clone()));

        let other = verify_request_fingerprint(0, 5, None);
        let e = ResumePoint::decode(&token, &other, &keys).unwrap_err();
        assert!(e.contains("another"), "{e}");
        let foreign = parse_keys("k2:a2V5LXRocmVlLWtleS10aHJlZS1rZXktdGhyZWUta2V5");
        assert!(ResumePoint::decode(&token, &request, &foreign).is_err());
        for bad in ["", "nonsense", "e30", &"A".repeat(MAX_RESUME_TOKEN + 1)] {
            assert!(ResumePoint::decode(bad, &request, &keys).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_resume_token_whose_fields_were_changed_is_refused() {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys = parse_keys(KEYS);
        let token = resume_point(&chain(6)).encode(&keys);
        let text = String::from_utf8(engine.decode(&token).unwrap()).unwrap();
        let inflated = text.replace("\"c\":3", "\"c\":3000");
        assert_ne!(inflated, text);
        let forged = engine.encode(inflated);
        let request = verify_request_fingerprint(0, 0, None);
        assert!(ResumePoint::decode(&forged, &request, &keys).is_err());
    }

    #[test]
    fn a_continuation_refuses_an_anchor_changed_since_it_was_verified() {
        let c = chain(6);
        let point = resume_point(&c);
        assert_eq!(point.check_anchor(Some(&c[2])), Ok(()));
        let f = point.check_anchor(None).unwrap_err();
        assert_eq!((f.position, f.problem), (3, Problem::MissingEntry));
        let f = point.check_anchor(Some(&c[3])).unwrap_err();
        assert_eq!((f.position, f.problem), (3, Problem::MissingEntry));
        // Rewritten and rehashed: consistent alone, not the entry that was verified.
        let mut rewritten = c[2].clone();
        rewritten.entry.actor = "mallory".into();
        rewritten.hash = chain_hash(3, &rewritten.previous_hash, &rewritten.entry);
        let f = point.check_anchor(Some(&rewritten)).unwrap_err();
        assert_eq!((f.position, f.problem), (3, Problem::HashMismatch));
        // Changed content under the old hash.
        let mut changed = c[2].clone();
        changed.entry.body.push(' ');
        assert_eq!(
            point.check_anchor(Some(&changed)).unwrap_err().problem,
            Problem::HashMismatch
        );
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, None, 5), Ok(5));
        let head = ChainHead {
            position: 3,
            hash: c[2].hash,
        };
        assert_eq!(verify(&c, Some(head), 5), Ok(5));
        assert_eq!(ChainHead::parse_token(&head.token()), Ok(head));
    }

    #[test]
    fn every_kind_of_tampering_is_found_where_it_happened() {
        let c = chain(6);
        let mut changed = c.clone();
        changed[2].entry.body.push(' ');
        assert_eq!(
            verify(&changed, None, 6).unwrap_err().problem,
            Problem::HashMismatch
        );
        assert_eq!(verify(&changed, None, 6).unwrap_err().position, 3);

        let mut deleted = c.clone();
        deleted.remove(3);
        let f = verify(&deleted, None, 6).unwrap_err();
        assert_eq!((f.position, f.problem), (4, Problem::MissingEntry));

        let mut swapped = c.clone();
        let (a, b) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = ChainedEntry { position: 2, ..b };
        swapped[2] = ChainedEntry { position: 3, ..a };
        let f = verify(&swapped, None, 6).unwrap_err();
        assert_eq!((f.position, f.problem), (2, Problem::BrokenLink));

        let truncated = &c[..4];
        let digest = ChainHead {
            position: 6,
            hash: c[5].hash,
        };
        assert!(
            verify(truncated, None, 4).is_ok(),
            "alone, a shorter trail looks whole"
        );
        let f = verify(truncated, Some(digest), 6).unwrap_err();
        assert_eq!((f.position, f.problem), (5, Problem::Truncated));

        // A rewritten history that is internally consistent: only the digest tells.
        let mut rewritten: Vec<AuditEntry> = (1..=6).map(entry).collect();
        rewritten[4].actor = "mallory".into();
        let rewritten = link(ChainTip::GENESIS, rewritten);
        assert!(verify(&rewritten, None, 6).is_ok());
        let f = verify(&rewritten, Some(digest), 6).unwrap_err();
        assert_eq!((f.position, f.problem), (6, Problem::DigestMismatch));
    }
}
