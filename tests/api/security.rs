//! Only the right callers: the authentication and authorisation matrix, through the real server.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use leadgate::auth::{Authenticator, RPC_ROLES, Role, hash_token};
use leadgate::grpc::pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::contract;
use crate::helpers::*;

/// One token per role: `tok-{role}` for principal `role-{role}`.
fn tokens_for_every_role() -> Authenticator {
    let entries: Vec<String> = Role::ALL
        .iter()
        .map(|r| format!("role-{r}:{r}:{}", hash_token(&format!("tok-{r}"))))
        .collect();
    Authenticator::load(None, Some(&entries.join(";"))).unwrap()
}

/// Calls any RPC with an empty message: enough to see whether the guard lets it through.
async fn call(channel: &Channel, path: &str, authorization: Option<&str>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    let method = http::uri::PathAndQuery::try_from(path.to_owned()).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if path.ends_with("/WatchDecisions") {
        grpc.server_streaming(request, method, codec).await.map(|_| ())
    } else {
        grpc.unary(request, method, codec).await.map(|_| ())
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

contract! {
    async fn each_role_may_call_exactly_its_rpcs(backend: Backend) {
        let app = spawn_app_with(
            &backend,
            Options {
                auth: tokens_for_every_role(),
                ..Options::default()
            },
        )
        .await;
        for (rpc, allowed) in RPC_ROLES {
            for role in Role::ALL {
                let answer = call(&app.channel, rpc, Some(&bearer(&format!("tok-{role}")))).await;
                let code = answer.as_ref().err().map_or(Code::Ok, Status::code);
                if allowed.contains(role) {
                    assert!(
                        !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                        "{role} on {rpc}: {answer:?}"
                    );
                } else {
                    assert_eq!(code, Code::PermissionDenied, "{role} on {rpc}");
                    assert_eq!(error_reason(&answer.unwrap_err()), "PERMISSION_DENIED");
                }
            }
        }
        assert_eq!(app.db.leads().await, 0, "empty requests write nothing");
        assert_eq!(app.db.audit_entries().await, 1, "only the policy activation");
    }

    async fn missing_or_wrong_credentials_are_unauthenticated_everywhere_but_health(backend: Backend) {
        let app = spawn_app_with(
            &backend,
            Options {
                auth: tokens_for_every_role(),
                ..Options::default()
            },
        )
        .await;
        for (rpc, _) in RPC_ROLES {
            for (authorization, reason) in [
                (None, "CREDENTIALS_MISSING"),
                (Some(bearer("not-a-token")), "CREDENTIALS_INVALID"),
                (Some("Basic dXNlcjpwYXNz".to_string()), "CREDENTIALS_INVALID"),
                (Some(bearer("a.b.c")), "CREDENTIALS_INVALID"),
            ] {
                let status = call(&app.channel, rpc, authorization.as_deref())
                    .await
                    .unwrap_err();
                assert_eq!(
                    status.code(),
                    Code::Unauthenticated,
                    "{rpc} with {authorization:?}"
                );
                assert_eq!(error_reason(&status), reason);
            }
        }
        assert_eq!(
            app.health_of("").await,
            ServingStatus::Serving,
            "probes need no credentials"
        );
        assert_eq!(app.db.leads().await, 0);

        // Reflection describes the API to any authenticated caller, and to nobody else.
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request::MessageRequest};
        let list = || {
            tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }])
        };
        let anonymous = ServerReflectionClient::new(app.channel.clone())
            .server_reflection_info(list())
            .await
            .unwrap_err();
        assert_eq!(anonymous.code(), Code::Unauthenticated);
        let mut request = tonic::Request::new(list());
        request
            .metadata_mut()
            .insert("authorization", bearer("tok-submitter").parse().unwrap());
        ServerReflectionClient::new(app.channel.clone())
            .server_reflection_info(request)
            .await
            .expect("any role may read the API");
    }

    async fn an_unknown_method_is_unimplemented_for_callers_who_authenticate_and_unauthenticated_for_others(backend: Backend) {
        let app = spawn_app_with(
            &backend,
            Options {
                auth: tokens_for_every_role(),
                ..Options::default()
            },
        )
        .await;
        for path in [
            "/leadgate.v1.LeadService/DropEverything",
            "/leadgate.v1.NoSuchService/SubmitLead",
            "/grpc.reflection.v1.ServerReflection/NoSuchMethod",
        ] {
            for role in Role::ALL {
                let status = call(&app.channel, path, Some(&bearer(&format!("tok-{role}"))))
                    .await
                    .unwrap_err();
                assert_eq!(status.code(), Code::Unimplemented, "{role} on {path}: {status:?}");
                assert!(!error_reason(&status).is_empty());
            }
            let status = call(&app.channel, path, None).await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{path} without credentials");
            assert_eq!(error_reason(&status), "CREDENTIALS_MISSING");
            let status = call(&app.channel, path, Some(&bearer("not-a-token"))).await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{path} with a wrong token");
        }
        let status = call(&app.channel, "/leadgate.v1.LeadService/DropEverything", Some(&bearer("tok-admin")))
            .await
            .unwrap_err();
        assert_eq!(error_reason(&status), "UNKNOWN_METHOD");
        assert!(status.message().contains("DropEverything"), "{}", status.message());
        assert_eq!(app.db.leads().await, 0);

        // With authentication off, every caller is anonymous and authenticated.
        let open = spawn_app(&backend).await;
        let status = call(&open.channel, "/leadgate.v1.LeadService/DropEverything", None).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    }

    async fn permission_is_checked_before_anything_is_looked_up(backend: Backend) {
        let app = spawn_app_with(
            &backend,
            Options {
                auth: tokens_for_every_role(),
                ..Options::default()
            },
        )
        .await;
        let mut request = tonic::Request::new(pb::GetLeadRequest {
            name: "leads/0193f7a4-0000-7000-8000-000000000000".into(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer("tok-submitter").parse().unwrap());
        let status = app.leads.clone().get_lead(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "not NOT_FOUND: a submitter learns nothing about leads"
        );
    }

    async fn the_principal_is_the_actor_of_every_change(backend: Backend) {
        let app = spawn_app_with(
            &backend,
            Options {
                auth: tokens_for_every_role(),
                ..Options::default()
            },
        )
        .await;
        let mut request = tonic::Request::new(cfo_demo_request("actor@acme.fr"));
        request
            .metadata_mut()
            .insert("authorization", bearer("tok-submitter").parse().unwrap());
        let lead = app
            .leads
            .clone()
            .submit_lead(request)
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap();
        let mut attempt = tonic::Request::new(pb::RecordContactAttemptRequest {
            name: lead.name.clone(),
            attempt: Some(pb::ContactAttempt {
                channel: pb::ContactChannel::Phone as i32,
                outcome: pb::ContactOutcome::Connected as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        attempt
            .metadata_mut()
            .insert("authorization", bearer("tok-sales").parse().unwrap());
        app.leads.clone().record_contact_attempt(attempt).await.unwrap();
        app.db.wait_until_chained().await;
        let actors = app
            .db
            .count("SELECT COUNT(*) FROM audit_log WHERE actor IN ('role-submitter', 'role-sales')")
            .await;
        assert_eq!(actors, 2);
    }

    async fn jwts_are_checked_for_signature_issuer_audience_expiry_and_algorithm(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let jwt = Jwt::new();
        let app = spawn_app_with(
            &backend,
            Options {
                auth: jwt_authenticator(&jwt, dir.path()),
                ..Options::default()
            },
        )
        .await;
        let digest = "/leadgate.v1.AuditService/GetAuditDigest";
        let (iss, aud) = ("https://idp.example.com", "leadgate");

        let good = jwt.sign("k1", claims("ana@example.com", &["analyst"], iss, aud, 300));
        call(&app.channel, digest, Some(&bearer(&good)))
            .await
            .expect("a valid token with the right role");
        let no_role = jwt.sign("k1", claims("ana@example.com", &["submitter"], iss, aud, 300));
        assert_eq!(
            call(&app.channel, digest, Some(&bearer(&no_role)))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );

        let other_key = Jwt::new().sign("k1", claims("eve", &["analyst"], iss, aud, 300));
        let mut tampered = good.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let alg_none = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let body = b64.encode(claims("eve", &["analyst"], iss, aud, 300).to_string());
            format!("{}.{body}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#))
        };
        let confused = {
            // HS256 "signed" with the public key: the classic algorithm confusion.
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &claims("eve", &["analyst"], iss, aud, 300),
                &EncodingKey::from_secret(&jwt.public_key),
            )
            .unwrap()
        };
        let cases = [
            (
                "expired",
                jwt.sign("k1", claims("ana", &["analyst"], iss, aud, -600)),
                "CREDENTIALS_EXPIRED",
            ),
            (
                "wrong audience",
                jwt.sign("k1", claims("ana", &["analyst"], iss, "someone-else", 300)),
                "CREDENTIALS_INVALID",
            ),
            (
                "wrong issuer",
                jwt.sign(
                    "k1",
                    claims("ana", &["analyst"], "https://evil.example", aud, 300),
                ),
                "CREDENTIALS_INVALID",
            ),
            (
                "unknown key id",
                jwt.sign("k2", claims("ana", &["analyst"], iss, aud, 300)),
                "CREDENTIALS_INVALID",
            ),
            ("signed by another key", other_key, "CREDENTIALS_INVALID"),
            ("tampered signature", tampered, "CREDENTIALS_INVALID"),
            ("alg none", alg_none, "CREDENTIALS_INVALID"),
            ("HS256 with the public key", confused, "CREDENTIALS_INVALID"),
        ];
        for (case, token, reason) in cases {
            let status = call(&app.channel, digest, Some(&bearer(&token)))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{case}");
            assert_eq!(error_reason(&status), reason, "{case}");
        }
    }

    async fn a_jwt_not_valid_yet_or_naming_a_bad_principal_is_unauthenticated(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let jwt = Jwt::new();
        let app = spawn_app_with(
            &backend,
            Options {
                auth: jwt_authenticator(&jwt, dir.path()),
                ..Options::default()
            },
        )
        .await;
        let digest = "/leadgate.v1.AuditService/GetAuditDigest";
        let (iss, aud) = ("https://idp.example.com", "leadgate");
        let not_before = |seconds_from_now: i64| {
            let mut c = claims("ana@example.com", &["analyst"], iss, aud, 7200);
            c["nbf"] = (chrono::Utc::now().timestamp() + seconds_from_now).into();
            jwt.sign("k1", c)
        };

        let status = call(&app.channel, digest, Some(&bearer(&not_before(3600)))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "an hour early: {status:?}");
        assert_eq!(error_reason(&status), "CREDENTIALS_INVALID");
        assert!(status.message().contains("not valid yet"), "{}", status.message());
        call(&app.channel, digest, Some(&bearer(&not_before(10))))
            .await
            .expect("within the leeway, as for exp");
        call(&app.channel, digest, Some(&bearer(&not_before(-60))))
            .await
            .expect("valid since a minute");

        let long = "a".repeat(5000);
        for (case, principal) in [
            ("leadgate's own actor", "engine"),
            ("the same in capitals", "ENGINE"),
            ("the unauthenticated actor", "anonymous"),
            ("a forged second line", "ana\nengine"),
            ("a right-to-left override", "ana\u{202e}nimda"),
            ("a zero-width space", "an\u{200b}a"),
            ("5,000 characters", long.as_str()),
        ] {
            let token = jwt.sign("k1", claims(principal, &["analyst"], iss, aud, 300));
            let status = call(&app.channel, digest, Some(&bearer(&token))).await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{case}");
            assert_eq!(error_reason(&status), "CREDENTIALS_INVALID", "{case}");
            assert!(status.message().starts_with("the token is not valid: the sub claim"), "{case}: {}", status.message());
            assert!(status.message().len() < 200, "{case}: the principal is not echoed back");
        }
        let token = jwt.sign("k1", claims("Zoë Dupont", &["analyst"], iss, aud, 300));
        call(&app.channel, digest, Some(&bearer(&token)))
            .await
            .expect("any visible characters");
    }

    async fn client_certificates_identify_callers_and_unknown_ones_are_refused(backend: Backend) {
        let pki = Pki::new("leadgate test CA");
        let rogue = Pki::new("someone else's CA");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clients-ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(
            dir.path().join("auth.toml"),
            "[mtls]\nclient_ca_file = \"clients-ca.pem\"\n[[mtls.clients]]\nsubject = \"crm.internal\"\nroles = [\"sales\"]\n",
        )
        .unwrap();
        let (server_cert, server_key) = pki.leaf(&["localhost", "127.0.0.1"]);
        let server_only = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca_pem))
            .domain_name("localhost");
        let options = Options {
            auth: Authenticator::load(Some(&dir.path().join("auth.toml")), None).unwrap(),
            tls: Some(leadgate::server::TlsFiles {
                certificate: server_cert.into_bytes(),
                key: server_key.into_bytes(),
            }),
            client_tls: Some(server_only.clone()),
            ..Options::default()
        };
        let app = spawn_app_with(&backend, options).await;
        let list = "/leadgate.v1.LeadService/ListLeads";

        // Health answers without a client certificate (Kubernetes probes have none).
        assert_eq!(app.health_of("").await, ServingStatus::Serving);
        let status = call(&app.channel, list, None).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "no certificate, no token");

        let connect = |tls: ClientTlsConfig| async move {
            Channel::from_shared(format!("https://{}", app.addr))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
        };
        let (crm_cert, crm_key) = pki.leaf(&["crm.internal"]);
        let crm = connect(
            server_only
                .clone()
                .identity(Identity::from_pem(&crm_cert, &crm_key)),
        )
        .await
        .unwrap();
        call(&crm, list, None)
            .await
            .expect("the certificate's subject has the sales role");
        let submit = call(&crm, "/leadgate.v1.LeadService/SubmitLead", None)
            .await
            .unwrap_err();
        assert_eq!(submit.code(), Code::PermissionDenied);

        let (stranger_cert, stranger_key) = pki.leaf(&["stranger.internal"]);
        let stranger = connect(
            server_only
                .clone()
                .identity(Identity::from_pem(&stranger_cert, &stranger_key)),
        )
        .await
        .unwrap();
        assert_eq!(
            call(&stranger, list, None).await.unwrap_err().code(),
            Code::PermissionDenied,
            "known CA, unknown subject: no roles"
        );

        // A certificate from the right CA whose subject is leadgate's own actor.
        let (engine_cert, engine_key) = pki.leaf(&["engine"]);
        let impostor = connect(
            server_only
                .clone()
                .identity(Identity::from_pem(&engine_cert, &engine_key)),
        )
        .await
        .unwrap();
        let status = call(&impostor, list, None).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(error_reason(&status), "CREDENTIALS_INVALID");

        let (forged_cert, forged_key) = rogue.leaf(&["crm.internal"]);
        let forged = connect(server_only.identity(Identity::from_pem(&forged_cert, &forged_key))).await;
        // TLS 1.3 reports the server's refusal on the first call: a transport error, never an
        // answer from leadgate (whose every answer carries ErrorInfo).
        if let Ok(channel) = forged {
            let answer = call(&channel, list, None).await;
            let status = answer.expect_err("a certificate from another CA fails the TLS handshake");
            use tonic_types::StatusExt;
            assert!(status.get_details_error_info().is_none(), "refused by TLS, not by the guard: {status:?}");
        }
    }
}

/// A TLS connection must complete its handshake within the handshake timeout: one that stops
/// halfway through its ClientHello is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_stalls_is_closed_after_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("leadgate test CA");
    let (server_cert, server_key) = pki.leaf(&["localhost", "127.0.0.1"]);
    let options = Options {
        tls: Some(leadgate::server::TlsFiles {
            certificate: server_cert.into_bytes(),
            key: server_key.into_bytes(),
        }),
        client_tls: Some(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&pki.ca_pem))
                .domain_name("localhost"),
        ),
        limits: leadgate::server::Limits {
            handshake_timeout: Duration::from_millis(500),
            ..Default::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(&Backend::Sqlite, options).await;
    let mut stalled = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // A handshake record announcing 512 bytes, of which only the first 64 come.
    let mut record = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    record.extend([0x01; 64]);
    stalled.write_all(&record).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 256];
        while let Ok(1..) = stalled.read(&mut buf).await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes a handshake that does not finish"
    );
    assert_eq!(
        app.health_of("").await,
        ServingStatus::Serving,
        "others are served"
    );
}

// ---- JWT ----

struct Jwt {
    key: EncodingKey,
    public_key: Vec<u8>,
}

impl Jwt {
    fn new() -> Jwt {
        let pair = rcgen::KeyPair::generate().unwrap();
        Jwt {
            key: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            public_key: pair.public_key_raw().to_vec(),
        }
    }

    fn jwks(&self, kid: &str) -> serde_json::Value {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64.encode(&self.public_key[1..33]), "y": b64.encode(&self.public_key[33..65]),
        }]})
    }

    fn sign(&self, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn claims(sub: &str, roles: &[&str], iss: &str, aud: &str, expires_in: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({ "sub": sub, "roles": roles, "iss": iss, "aud": aud, "iat": now, "exp": now + expires_in })
}

fn jwt_authenticator(jwt: &Jwt, dir: &std::path::Path) -> Authenticator {
    std::fs::write(dir.join("jwks.json"), jwt.jwks("k1").to_string()).unwrap();
    std::fs::write(
        dir.join("auth.toml"),
        r#"[jwt]
issuer = "https://idp.example.com"
audience = "leadgate"
algorithms = ["ES256"]
jwks_file = "jwks.json"
"#,
    )
    .unwrap();
    Authenticator::load(Some(&dir.join("auth.toml")), None).unwrap()
}

// ---- mTLS ----

struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate and key for `names`, with the first as common name.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[tokio::test]
async fn a_public_address_without_authentication_is_refused() {
    let config = leadgate::server::ServerConfig {
        listen: "0.0.0.0:50051".parse().unwrap(),
        database: leadgate::store::ConnectOptions {
            url: "sqlite://x.db".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: None,
            sqlite_max_size: None,
        },
        policy: std::sync::Arc::new(leadgate::domain::policy::Policy::default_policy()),
        drain_timeout: Duration::from_secs(1),
        app: leadgate::app::AppSettings::with_keys(test_audit_keys()),
        reflection: true,
        migrate: true,
        auth: std::sync::Arc::new(Authenticator::default()),
        tls: None,
        limits: Default::default(),
    };
    assert!(
        config
            .check_exposure(false)
            .unwrap_err()
            .contains("refusing to listen on 0.0.0.0:50051")
    );
    assert!(config.check_exposure(true).is_ok(), "unless explicitly allowed");
    let local = leadgate::server::ServerConfig {
        listen: "127.0.0.1:50051".parse().unwrap(),
        ..config.clone()
    };
    assert!(local.check_exposure(false).is_ok());
    let with_tokens = leadgate::server::ServerConfig {
        auth: std::sync::Arc::new(tokens_for_every_role()),
        ..config
    };
    assert!(with_tokens.check_exposure(false).is_ok());
}
