//! Who is calling: bearer tokens (stored as SHA-256 hashes), JWTs verified against a JWKS file
//! with pinned algorithms, and client certificates (mTLS). With nothing configured, every caller is
//! `anonymous` with every role — and the server only listens on loopback.

mod roles;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use roles::{Access, OPEN_TO_ALL, RPC_ROLES, Role, Roles, access};

use crate::domain::audit::ENGINE_ACTOR;
use crate::domain::hex::{from_hex, to_hex};

/// The principal of callers when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// The longest principal accepted, in characters.
pub const MAX_PRINCIPAL_CHARS: usize = 128;

/// Names leadgate writes as actors itself: a caller with one of them would pass for leadgate in
/// the audit trail (and the engine's own entries are treated differently).
pub const RESERVED_PRINCIPALS: &[&str] = &[ENGINE_ACTOR, ANONYMOUS, "leadgate", "system"];

/// Unicode's invisible formatting characters (general category Cf: bidirectional overrides such
/// as U+202E, zero-width spaces and joiners, tags) and the line and paragraph separators. In an
/// actor they hide or reorder what a person reading the trail sees.
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Checks a principal, whatever its source (token configuration, JWT claim, client certificate):
/// it becomes the actor of every audit entry the caller causes, so it is one line of visible
/// characters, at most [`MAX_PRINCIPAL_CHARS`] long, and none of leadgate's own names. The
/// refusal never quotes the principal back.
pub fn check_principal(principal: &str) -> Result<(), String> {
    if principal.is_empty() {
        return Err("is empty".into());
    }
    if principal.trim() != principal {
        return Err("starts or ends with white space".into());
    }
    if principal.chars().count() > MAX_PRINCIPAL_CHARS {
        return Err(format!("is longer than {MAX_PRINCIPAL_CHARS} characters"));
    }
    let hidden = |c: char| {
        let code = u32::from(c);
        c.is_control()
            || FORMAT_CHARACTERS
                .iter()
                .any(|(first, last)| (*first..=*last).contains(&code))
    };
    if let Some(c) = principal.chars().find(|c| hidden(*c)) {
        return Err(format!(
            "holds the control or invisible formatting character U+{:04X}",
            u32::from(c)
        ));
    }
    if let Some(reserved) = RESERVED_PRINCIPALS
        .iter()
        .find(|r| r.eq_ignore_ascii_case(principal))
    {
        return Err(format!("is {reserved:?}, a name leadgate keeps for itself"));
    }
    Ok(())
}

/// An authenticated caller: who it is and what it may call. Only the guard sees it; past the
/// role check, the use cases know the caller as an [`crate::app::Actor`] (its principal alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Recorded as the actor of every change the caller makes.
    pub principal: String,
    pub roles: Roles,
}

/// Why a caller is not authenticated; the message is safe to send back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// `ErrorInfo.reason`.
    pub reason: &'static str,
    pub message: String,
}

fn refused(reason: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        reason,
        message: message.into(),
    }
}

/// The hex SHA-256 of a token: what the configuration stores instead of the token.
pub fn hash_token(token: &str) -> String {
    to_hex(&Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits from the operating system, hex).
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("lg_{}{}", a.simple(), b.simple())
}

// ---- the configuration file ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    jwt: Option<JwtEntry>,
    mtls: Option<MtlsEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    principal: String,
    roles: Vec<Role>,
    /// Hex SHA-256 of the token (`leadgate auth hash-token`).
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtEntry {
    issuer: String,
    audience: String,
    /// The only algorithms accepted, e.g. ["RS256"] or ["ES256"].
    algorithms: Vec<String>,
    /// A JSON Web Key Set file (relative paths are relative to the configuration file).
    jwks_file: PathBuf,
    #[serde(default = "default_principal_claim")]
    principal_claim: String,
    #[serde(default = "default_roles_claim")]
    roles_claim: String,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
}

fn default_principal_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MtlsEntry {
    /// PEM file of the CA(s) that sign client certificates.
    client_ca_file: PathBuf,
    #[serde(default)]
    clients: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    /// The certificate's subject common name (or, without one, its first DNS name).
    subject: String,
    roles: Vec<Role>,
}

struct JwtVerifier {
    /// Keys by `kid`; the key without a `kid` under "".
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    principal_claim: String,
    roles_claim: String,
}

/// Turns credentials into identities.
#[derive(Default)]
pub struct Authenticator {
    tokens: HashMap<[u8; 32], Identity>,
    jwt: Option<JwtVerifier>,
    clients: Option<HashMap<String, Roles>>,
    /// PEM of the CAs client certificates must chain to (for the TLS server).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .field("mtls", &self.clients.is_some())
            .finish()
    }
}

fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base.and_then(Path::parent) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

impl Authenticator {
    /// Loads credentials from a TOML file and/or the compact `principal:role+role:sha256;...` form
    /// (the `LEADGATE_AUTH_TOKENS` variable). Every problem is reported.
    pub fn load(file: Option<&Path>, env_tokens: Option<&str>) -> Result<Authenticator, String> {
        let mut auth = Authenticator::default();
        let mut add_token = |principal: &str, roles: &[Role], sha256: &str, at: &str| -> Result<(), String> {
            let hash = from_hex(sha256.trim()).map_err(|e| format!("{at}: sha256 {e}"))?;
            if principal.trim().is_empty() {
                return Err(format!("{at}: principal is required"));
            }
            check_principal(principal.trim()).map_err(|why| format!("{at}: principal {why}"))?;
            let identity = Identity {
                principal: principal.trim().to_owned(),
                roles: Roles::of(roles),
            };
            if auth.tokens.insert(hash, identity).is_some() {
                return Err(format!("{at}: the same token is configured twice"));
            }
            Ok(())
        };
        if let Some(text) = env_tokens.filter(|t| !t.trim().is_empty()) {
            for (i, item) in text
                .split([';', '\n'])
                .filter(|s| !s.trim().is_empty())
                .enumerate()
            {
                let at = format!("LEADGATE_AUTH_TOKENS entry {}", i + 1);
                let parts: Vec<&str> = item.trim().split(':').collect();
                let [principal, roles, sha256] = parts[..] else {
                    return Err(format!("{at}: expected principal:role+role:sha256"));
                };
                let roles = roles
                    .split('+')
                    .map(|r| Role::from_name(r.trim()).ok_or_else(|| format!("{at}: unknown role {r:?}")))
                    .collect::<Result<Vec<_>, _>>()?;
                add_token(principal, &roles, sha256, &at)?;
            }
        }
        let Some(path) = file else {
            return Ok(auth);
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed: AuthFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, t) in parsed.tokens.iter().enumerate() {
            add_token(
                &t.principal,
                &t.roles,
                &t.sha256,
                &format!("{}: tokens[{i}]", path.display()),
            )?;
        }
        if let Some(jwt) = parsed.jwt {
            auth.jwt = Some(JwtVerifier::load(&jwt, Some(path))?);
        }
        if let Some(mtls) = parsed.mtls {
            let ca = resolve(Some(path), &mtls.client_ca_file);
            let pem = std::fs::read(&ca).map_err(|e| format!("mtls.client_ca_file {}: {e}", ca.display()))?;
            auth.client_ca_pem = Some(pem);
            let mut clients = HashMap::new();
            for (i, c) in mtls.clients.into_iter().enumerate() {
                check_principal(&c.subject)
                    .map_err(|why| format!("{}: mtls.clients[{i}]: subject {why}", path.display()))?;
                clients.insert(c.subject, Roles::of(&c.roles));
            }
            auth.clients = Some(clients);
        }
        Ok(auth)
    }

    /// Whether any credential is configured (otherwise everyone is `anonymous`).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some() || self.clients.is_some()
    }

    /// Who presents these credentials: the `authorization` header's bearer token (a JWT or a
    /// configured token), else the client certificate.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client_certificate: Option<&[u8]>,
    ) -> Result<Identity, AuthError> {
        if !self.enabled() {
            return Ok(Identity {
                principal: ANONYMOUS.into(),
                roles: Roles::ALL,
            });
        }
        if let Some(header) = authorization {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    refused(
                        "CREDENTIALS_INVALID",
                        "the authorization header must be `Bearer <token>`",
                    )
                })?;
            let looks_like_jwt = token.matches('.').count() == 2;
            return match (&self.jwt, looks_like_jwt) {
                (Some(jwt), true) => jwt.verify(token),
                _ => self
                    .tokens
                    .get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes())))
                    .cloned()
                    .ok_or_else(|| refused("CREDENTIALS_INVALID", "the token is not valid")),
            };
        }
        if let (Some(clients), Some(der)) = (&self.clients, client_certificate) {
            let subject = certificate_subject(der)
                .ok_or_else(|| refused("CREDENTIALS_INVALID", "the client certificate names no subject"))?;
            check_principal(&subject).map_err(|why| {
                refused(
                    "CREDENTIALS_INVALID",
                    format!("the client certificate's subject {why}"),
                )
            })?;
            let roles = clients.get(&subject).copied().unwrap_or_default();
            return Ok(Identity {
                principal: subject,
                roles,
            });
        }
        Err(refused(
            "CREDENTIALS_MISSING",
            "credentials are required: a bearer token or a client certificate",
        ))
    }
}

impl JwtVerifier {
    fn load(entry: &JwtEntry, config: Option<&Path>) -> Result<JwtVerifier, String> {
        let algorithms = entry
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| format!("jwt.algorithms: unknown algorithm {a:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err("jwt.algorithms: name at least one algorithm".into());
        }
        let path = resolve(config, &entry.jwks_file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("jwt.jwks_file {}: {e}", path.display()))?;
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("jwt.jwks_file {}: {e}", path.display()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| format!("jwt.jwks_file {}: {e}", path.display()))?;
            keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
        }
        if keys.is_empty() {
            return Err(format!("jwt.jwks_file {}: no keys", path.display()));
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_issuer(&[&entry.issuer]);
        validation.set_audience(&[&entry.audience]);
        // `nbf` (not before) is checked with the same leeway as `exp`: a token issued for later
        // is not valid yet.
        validation.leeway = entry.leeway_seconds;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "iss", "aud"].iter().map(|s| s.to_string()).collect();
        Ok(JwtVerifier {
            keys,
            validation,
            principal_claim: entry.principal_claim.clone(),
            roles_claim: entry.roles_claim.clone(),
        })
    }

    #[expect(
        clippy::wildcard_enum_match_arm,
        reason = "jsonwebtoken's error kinds are many and open-ended; those not named are one refusal"
    )]
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let invalid = |why: &str| refused("CREDENTIALS_INVALID", format!("the token is not valid: {why}"));
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed or unsupported header"))?;
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => self.keys.get(""),
        }
        .ok_or_else(|| invalid("unknown signing key"))?;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &self.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => refused("CREDENTIALS_EXPIRED", "the token has expired"),
                    ErrorKind::ImmatureSignature => invalid("not valid yet (nbf is in the future)"),
                    ErrorKind::InvalidAudience => invalid("wrong audience"),
                    ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                    ErrorKind::InvalidAlgorithm => invalid("algorithm not accepted"),
                    ErrorKind::InvalidSignature => invalid("bad signature"),
                    ErrorKind::MissingRequiredClaim(claim) => invalid(&format!("missing claim {claim}")),
                    _ => invalid("rejected"),
                })?
                .claims;
        let principal = claims
            .get(&self.principal_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(&format!("no {} claim", self.principal_claim)))?;
        check_principal(principal)
            .map_err(|why| invalid(&format!("the {} claim {why}", self.principal_claim)))?;
        let names: Vec<String> = match claims.get(&self.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let roles: Vec<Role> = names.iter().filter_map(|n| Role::from_name(n)).collect();
        Ok(Identity {
            principal: principal.to_owned(),
            roles: Roles::of(&roles),
        })
    }
}

/// The subject common name of a DER certificate, or its first DNS name.
#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "only DNS names identify a client; the other general-name forms are ignored"
)]
fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        return Some(cn.to_owned());
    }
    let san = cert.subject_alternative_name().ok().flatten()?;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_environment_as_hashes() {
        let hash = hash_token("s3cret");
        let auth = Authenticator::load(
            None,
            Some(&format!(
                "web-forms:submitter:{hash}; crm:sales+manager:{}",
                hash_token("other")
            )),
        )
        .unwrap();
        let id = auth.authenticate(Some("Bearer s3cret"), None).unwrap();
        assert_eq!(id.principal, "web-forms");
        assert!(id.roles.has(Role::Submitter) && !id.roles.has(Role::Sales));
        assert_eq!(
            auth.authenticate(Some("Bearer wrong"), None).unwrap_err().reason,
            "CREDENTIALS_INVALID"
        );
        assert_eq!(
            auth.authenticate(None, None).unwrap_err().reason,
            "CREDENTIALS_MISSING"
        );
        assert_eq!(
            auth.authenticate(Some("Basic abc"), None).unwrap_err().reason,
            "CREDENTIALS_INVALID"
        );
    }

    #[test]
    fn bad_token_settings_are_refused() {
        for bad in [
            "web-forms:submitter",
            "web-forms:chef:00",
            &format!("x:submitter:{}", "z".repeat(64)),
        ] {
            assert!(Authenticator::load(None, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_credentials_everyone_is_anonymous_with_every_role() {
        let auth = Authenticator::default();
        assert!(!auth.enabled());
        let id = auth.authenticate(None, None).unwrap();
        assert_eq!(id.principal, ANONYMOUS);
        assert_eq!(id.roles, Roles::ALL);
    }

    #[test]
    fn principals_are_one_visible_line_and_not_leadgate_s_own_names() {
        for good in [
            "web-forms",
            "ana@example.com",
            "Zoë Dupont",
            "crm.internal",
            "東京-dialer",
        ] {
            assert_eq!(check_principal(good), Ok(()), "{good}");
        }
        let long = "x".repeat(MAX_PRINCIPAL_CHARS + 1);
        for (bad, why) in [
            ("", "is empty"),
            (" ana", "white space"),
            ("engine", "leadgate keeps for itself"),
            ("Anonymous", "leadgate keeps for itself"),
            ("LEADGATE", "leadgate keeps for itself"),
            ("ana\nactor: engine", "U+000A"),
            ("ana\0", "U+0000"),
            ("ana\u{202e}nimda", "U+202E"),
            ("an\u{200b}a", "U+200B"),
            ("ana\u{2028}b", "U+2028"),
            (long.as_str(), "longer than 128"),
        ] {
            let refusal = check_principal(bad).unwrap_err();
            assert!(refusal.contains(why), "{bad:?}: {refusal}");
        }
        assert_eq!(check_principal(&"x".repeat(MAX_PRINCIPAL_CHARS)), Ok(()));
    }

    #[test]
    fn a_configuration_naming_a_bad_principal_is_refused_at_load() {
        for principal in ["engine", "anonymous", "ops\u{202e}", "ops\tteam"] {
            let entry = format!("{principal}:admin:{}", hash_token("t"));
            let error = Authenticator::load(None, Some(&entry)).unwrap_err();
            assert!(error.contains("entry 1: principal"), "{principal:?}: {error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.toml");
        std::fs::write(
            &file,
            format!(
                "[[tokens]]\nprincipal = \"engine\"\nroles = [\"admin\"]\nsha256 = \"{}\"\n",
                hash_token("t")
            ),
        )
        .unwrap();
        let error = Authenticator::load(Some(&file), None).unwrap_err();
        assert!(error.contains("tokens[0]: principal is \"engine\""), "{error}");
        std::fs::write(dir.path().join("ca.pem"), "not read until a client connects").unwrap();
        std::fs::write(
            &file,
            "[mtls]\nclient_ca_file = \"ca.pem\"\n[[mtls.clients]]\nsubject = \"crm\\u202e\"\nroles = [\"sales\"]\n",
        )
        .unwrap();
        let error = Authenticator::load(Some(&file), None).unwrap_err();
        assert!(error.contains("mtls.clients[0]: subject holds"), "{error}");
    }

    #[test]
    fn new_tokens_are_long_and_different() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.len() >= 64);
    }
}
