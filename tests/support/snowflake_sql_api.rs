//! A local stand-in for the Snowflake SQL API: HTTPS on 127.0.0.1 with a CA made here, checking
//! key-pair JWTs the way Snowflake documents it and answering like `POST /api/v2/statements`.
//!
//! Checks, per request: `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT` and
//! `Authorization: Bearer <jwt>`; the `iss` fingerprint names one of the user's registered public
//! keys (`RSA_PUBLIC_KEY`, `RSA_PUBLIC_KEY_2`) and the RS256 signature verifies with it
//! (verified by `jsonwebtoken`, independent of the crate under test); `iss` is
//! `ACCOUNT.USER.SHA256:<fp>` and `sub` is `ACCOUNT.USER`; `iat` is not in the future (60 s skew)
//! and not older than an hour; `exp` is after now and at most one hour after `iat`.

#![allow(dead_code)] // each test file uses a part

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use remote_signer::PublicKey;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio_rustls::rustls;

/// Seconds since 1970 as the server sees them.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    })
}

/// A clock the test sets.
pub fn fixed_clock(now: Arc<AtomicU64>) -> Clock {
    Arc::new(move || now.load(Ordering::SeqCst))
}

/// The user the server knows: account and user in Snowflake's (uppercase) form, and the public
/// keys registered on the user.
pub struct Registration {
    pub account: String,
    pub user: String,
    pub public_keys: Vec<PublicKey>,
}

pub struct FakeSnowflake {
    /// `https://127.0.0.1:<port>`
    pub url: String,
    /// The test CA's certificate, PEM.
    pub ca_pem: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

struct State {
    account: String,
    user: String,
    /// `SHA256:<base64>` fingerprint of each registered key, with the key as `jsonwebtoken`
    /// verifies with it (parsed once: a test may send thousands of requests).
    keys: Vec<(String, jsonwebtoken::DecodingKey)>,
    clock: Clock,
    accepted: AtomicU64,
    rejected: AtomicU64,
    tokens: Mutex<HashSet<String>>,
    rejections: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
}

impl FakeSnowflake {
    pub async fn start(registration: Registration, clock: Clock) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "remote-signer test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let state = Arc::new(State {
            account: registration.account,
            user: registration.user,
            keys: registration
                .public_keys
                .iter()
                .map(|key| {
                    let fp = format!(
                        "SHA256:{}",
                        STANDARD.encode(Sha256::digest(key.to_spki_der()))
                    );
                    let key = jsonwebtoken::DecodingKey::from_rsa_pem(key.to_pem().as_bytes())
                        .expect("a registered key is an RSA public key");
                    (fp, key)
                })
                .collect(),
            clock,
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            tokens: Mutex::new(HashSet::new()),
            rejections: Mutex::new(Vec::new()),
        });
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    // Out of file descriptors, usually: let connections close instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = server_state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeSnowflake {
            url,
            ca_pem: ca_cert.pem(),
            state,
            server,
        }
    }

    /// Requests answered with a result set.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Requests refused.
    pub fn rejected(&self) -> u64 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Distinct tokens among the accepted requests.
    pub fn distinct_tokens(&self) -> usize {
        self.state.tokens.lock().unwrap().len()
    }

    /// Why requests were refused, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.state.rejections.lock().unwrap().clone()
    }
}

impl Drop for FakeSnowflake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::POST || request.uri().path() != "/api/v2/statements" {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"code":"000404","message":"Not found"}"#,
        );
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let checked = check_request(
        state,
        header("authorization"),
        header("x-snowflake-authorization-token-type"),
        header("user-agent"),
    );
    let token = match checked {
        Ok(token) => token,
        Err(why) => {
            state.rejected.fetch_add(1, Ordering::SeqCst);
            state.rejections.lock().unwrap().push(why);
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"code":"390144","message":"JWT token is invalid."}"#,
            );
        }
    };
    let Ok(body) = request.into_body().collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"code":"000400","message":"Bad request"}"#,
        );
    };
    let statement = serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
        .ok()
        .and_then(|v| {
            v.get("statement")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        });
    let Some(statement) = statement else {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"code":"002140","message":"statement is missing"}"#,
        );
    };
    state.accepted.fetch_add(1, Ordering::SeqCst);
    state.tokens.lock().unwrap().insert(token);
    let now_ms = (state.clock)() * 1000;
    let body = serde_json::json!({
        "resultSetMetaData": {
            "numRows": 1,
            "format": "jsonv2",
            "partitionInfo": [{"rowCount": 1, "uncompressedSize": 10}],
            "rowType": [{
                "name": statement.trim_start_matches("SELECT ").trim(),
                "database": "", "schema": "", "table": "",
                "type": "fixed", "scale": 0, "precision": 1, "nullable": false,
                "byteLength": null, "length": null, "collation": null
            }]
        },
        "data": [["1"]],
        "code": "090001",
        "statementStatusUrl": "/api/v2/statements/01b2c3d4-0000-0001-0000-000100020003",
        "requestId": "6b5f3c8e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
        "sqlState": "00000",
        "statementHandle": "01b2c3d4-0000-0001-0000-000100020003",
        "message": "Statement executed successfully.",
        "createdOn": now_ms
    });
    json(StatusCode::OK, &body.to_string())
}

/// Checks the headers and the token; returns the token.
fn check_request(
    state: &State,
    authorization: Option<String>,
    token_type: Option<String>,
    user_agent: Option<String>,
) -> Result<String, String> {
    if token_type.as_deref() != Some("KEYPAIR_JWT") {
        return Err("X-Snowflake-Authorization-Token-Type is not KEYPAIR_JWT".into());
    }
    if user_agent.is_none_or(|ua| ua.is_empty()) {
        return Err("no User-Agent".into());
    }
    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or("no Bearer authorization")?
        .to_string();
    // Find the key by the fingerprint the token names, before trusting anything else in it.
    let peek = jsonwebtoken::dangerous::insecure_decode::<Claims>(&token)
        .map_err(|e| format!("malformed token: {e}"))?;
    let (principal, fingerprint) = peek
        .claims
        .iss
        .rsplit_once(".SHA256:")
        .ok_or("iss has no SHA256 fingerprint")?;
    let fingerprint = format!("SHA256:{fingerprint}");
    let (_, key) = state
        .keys
        .iter()
        .find(|(fp, _)| *fp == fingerprint)
        .ok_or("iss names a key that is not registered on the user")?;

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false; // checked below against the server's clock
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(&token, key, &validation)
        .map_err(|e| format!("signature: {e}"))?
        .claims;

    let expected = format!("{}.{}", state.account, state.user);
    if principal != expected || claims.sub != expected {
        return Err(format!("iss/sub name {:?}, not {expected:?}", claims.sub));
    }
    let now = (state.clock)();
    if claims.iat > now + 60 {
        return Err("iat is in the future".into());
    }
    if claims.iat + 3600 < now {
        return Err("iat is older than an hour".into());
    }
    if claims.exp <= now {
        return Err("token expired".into());
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
        return Err("exp is not within an hour of iat".into());
    }
    Ok(token)
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
