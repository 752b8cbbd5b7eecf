//! A local Azure Key Vault emulator, faithful to the exchanges recorded in
//! `tests/data/keyvault/` (from the real service and from the SDKs).
//!
//! It serves HTTPS on 127.0.0.1 with a certificate from a CA it generates (written to a file
//! for `SSL_CERT_FILE`), answers the first unauthenticated request with the service's 401
//! challenge, runs the Entra token endpoint that `azure_identity`'s client-secret and
//! workload-identity credentials call (point `AZURE_AUTHORITY_HOST` at
//! [`Emulator::authority_host`]), holds RSA and EC keys in several versions, signs digests,
//! verifies, creates versions, honours key attributes (enabled, nbf, exp), injects faults on
//! demand and counts what it served.
//!
//! ```ignore
//! let emu = keyvault_emulator::Emulator::start();
//! let version = emu.create_key("signing", KeySpec::Rsa(2048));
//! let url = emu.key_url("signing", Some(&version)); // https://127.0.0.1:PORT/keys/signing/VERSION
//! std::process::Command::new("remote-signer").envs(emu.env()) /* ... */;
//! ```
//!
//! The server runs on a runtime of its own, so it keeps serving while a test blocks (on a
//! child process, say); it stops when the [`Emulator`] is dropped.

pub mod cli;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};

/// The tenant the emulator's token endpoint serves.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The client id registered for the client-secret and workload-identity credentials.
pub const CLIENT_ID: &str = "5a3b1f0e-0000-4000-8000-emulatorclnt";
/// The registered client secret.
pub const CLIENT_SECRET: &str = "emulator-secret~value";
/// The federated token the workload-identity credential must present.
pub const FEDERATED_TOKEN: &str =
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp0ZXN0In0.";
/// The `IDENTITY_HEADER` secret of the emulated App Service managed-identity endpoint.
pub const IDENTITY_HEADER: &str = "emulator-identity-header";
/// The resource the 401 challenge names, as the public cloud's vaults do.
pub const RESOURCE: &str = "https://vault.azure.net";

/// A key to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// RSA of this many bits.
    Rsa(usize),
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// EC P-256K (secp256k1).
    P256K,
}

/// Key attributes that decide whether the key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// `enabled`.
    pub enabled: bool,
    /// `nbf`, Unix seconds.
    pub not_before: Option<i64>,
    /// `exp`, Unix seconds.
    pub expires: Option<i64>,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            enabled: true,
            not_before: None,
            expires: None,
        }
    }
}

/// Refusal configured for a key, with the service's error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// 403 `Forbidden` / `AccessDenied` (vault access policy).
    AccessPolicy,
    /// 403 `Forbidden` / `ForbiddenByRbac` (Azure RBAC).
    Rbac,
}

/// What the `Retry-After` of a 429 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `retry-after-ms: <milliseconds>`.
    Millis(u64),
}

/// A fault the emulator can inject into key requests (after authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `Throttled`, as recorded (with the given retry header, or none).
    Throttle(Option<RetryAfter>),
    /// This 5xx status with an `InternalServerError`-style body.
    Status(u16),
    /// Answer normally after this delay.
    Latency(Duration),
    /// Close the connection without answering.
    Drop,
    /// Answer a sign request with a corrupted signature (a tampered reply).
    Tamper,
}

/// A failure of the TLS layer, for connections opened after it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFault {
    /// Present a certificate from a CA nobody trusts (a wrong endpoint or an intercepting
    /// proxy).
    UntrustedCertificate,
    /// Close the connection before the handshake completes.
    AbortHandshake,
}

/// One request the emulator served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// HTTP method.
    pub method: String,
    /// Path as sent (e.g. `/keys/k//sign`).
    pub path: String,
    /// Whether it carried a bearer token.
    pub authorized: bool,
    /// Status answered (0 for a dropped connection).
    pub status: u16,
}

enum Private {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    K256(k256::SecretKey),
}

struct Version {
    id: String,
    key: Private,
    attributes: Attributes,
    created: i64,
    key_ops: Vec<String>,
    hsm: bool,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Vec<Version>>,
    denied: HashMap<String, Deny>,
    tokens: HashSet<String>,
    faults: VecDeque<Fault>,
    storm: Option<Fault>,
    token_faults: VecDeque<Fault>,
    token_storm: Option<Fault>,
    /// `expires_in` of issued tokens (`None`: the default, 3599 s).
    token_lifetime: Option<u64>,
    tls_fault: Option<TlsFault>,
    /// Bumped when the TLS layer changes, so connections opened before are closed.
    tls_generation: u64,
    counts: HashMap<&'static str, u64>,
    served: Vec<Served>,
}

type Shared = Arc<Mutex<State>>;

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    addr: SocketAddr,
    state: Shared,
    ca_pem: String,
    ca_path: PathBuf,
    dir: tempfile::TempDir,
    /// Tells open connections that the TLS layer changed (its value: the new generation).
    tls_changed: tokio::sync::watch::Sender<u64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Emulator {
    /// Starts an emulator on 127.0.0.1 with a fresh CA. Its certificate is valid for
    /// `127.0.0.1`, `localhost` and `*.vault.azure.net`.
    pub fn start() -> Emulator {
        Self::start_on(0)
    }

    /// Like [`start`](Self::start), on a given port of 127.0.0.1 (0: any free port).
    pub fn start_on(port: u16) -> Emulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca_pem, tls) = make_tls();
        // The same server name from a CA of its own, which nobody is told to trust.
        let (_, untrusted) = make_tls();
        let ca_path = dir.path().join("emulator-ca.pem");
        std::fs::write(&ca_path, &ca_pem).expect("write CA");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keyvault-emulator")
            .enable_all()
            .build()
            .expect("runtime");
        // Bound without block_on, so that tests running inside a runtime can start one.
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).expect("listener")
        };
        let state: Shared = Arc::default();
        let (tls_changed, tls_change) = tokio::sync::watch::channel(0);
        runtime.spawn(serve(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            tokio_rustls::TlsAcceptor::from(untrusted),
            state.clone(),
            tls_change,
        ));
        Emulator {
            addr,
            state,
            ca_pem,
            ca_path,
            dir,
            tls_changed,
            runtime: Some(runtime),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn vault_url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// `https://127.0.0.1:PORT/keys/NAME[/VERSION]`.
    pub fn key_url(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("https://{}/keys/{name}/{v}", self.addr),
            None => format!("https://{}/keys/{name}", self.addr),
        }
    }

    /// The value for `AZURE_AUTHORITY_HOST`: this emulator's token endpoint.
    pub fn authority_host(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`ca_pem`](Self::ca_pem), for `SSL_CERT_FILE`.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// A directory that lives as long as the emulator (for token files and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes [`FEDERATED_TOKEN`] to a file, for `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn federated_token_file(&self) -> PathBuf {
        let path = self.dir.path().join("federated-token");
        std::fs::write(&path, FEDERATED_TOKEN).expect("write token file");
        path
    }

    /// The standard variables that make the client-secret credential and the TLS stack use
    /// this emulator: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
    /// `AZURE_AUTHORITY_HOST`, `SSL_CERT_FILE`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_TENANT_ID".into(), TENANT_ID.into()),
            ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
            ("AZURE_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            ("AZURE_AUTHORITY_HOST".into(), self.authority_host()),
            (
                "SSL_CERT_FILE".into(),
                self.ca_path.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// The variables of an App Service managed identity served by this emulator
    /// (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) plus `SSL_CERT_FILE`; no `AZURE_*` secret, so
    /// the default credential chain reaches managed identity without leaving 127.0.0.1.
    pub fn managed_identity_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("https://{}/msi/token", self.addr),
            ),
            ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
            (
                "SSL_CERT_FILE".into(),
                self.ca_path.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// A token the vault accepts, for credentials that do not go through the token endpoint.
    pub fn issue_token(&self) -> String {
        let token = random_hex(32);
        self.lock().tokens.insert(token.clone());
        token
    }

    /// Every access token issued so far (by the token endpoints or [`issue_token`](Self::issue_token)).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.iter().cloned().collect()
    }

    /// Creates a new version of key `name` (creating the key if needed); returns the version.
    /// RSA-2048 keys come from [`rsa_key_pool`] (distinct, not generated) while it lasts.
    pub fn create_key(&self, name: &str, spec: KeySpec) -> String {
        let key = generate(spec);
        self.add_version(name, key)
    }

    /// Serves a known private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC) as a new version of
    /// key `name`; returns the version.
    ///
    /// # Panics
    /// If the PEM is not a supported unencrypted private key.
    pub fn import_pem(&self, name: &str, pem: &str) -> String {
        let key = parse_private_pem(pem).expect("a PKCS#8, PKCS#1 or SEC1 private key");
        self.add_version(name, key)
    }

    fn add_version(&self, name: &str, key: Private) -> String {
        let id = random_hex(16);
        self.lock()
            .keys
            .entry(name.to_string())
            .or_default()
            .push(Version {
                id: id.clone(),
                key,
                attributes: Attributes::default(),
                created: now(),
                key_ops: vec!["sign".into(), "verify".into()],
                hsm: false,
            });
        id
    }

    /// Marks one version (`None`: the current version) as HSM-protected: its `kty` becomes
    /// `RSA-HSM` or `EC-HSM`, as Premium vaults and Managed HSM report.
    pub fn set_hsm(&self, name: &str, version: Option<&str>) {
        let mut state = self.lock();
        let v = find_mut(&mut state, name, version).expect("known key version");
        v.hsm = true;
    }

    /// Sets the attributes of one version (`None`: the current version).
    pub fn set_attributes(&self, name: &str, version: Option<&str>, attributes: Attributes) {
        let mut state = self.lock();
        let v = find_mut(&mut state, name, version).expect("known key version");
        v.attributes = attributes;
    }

    /// Sets the permitted operations of one version (`None`: the current version).
    pub fn set_key_ops(&self, name: &str, version: Option<&str>, ops: &[&str]) {
        let mut state = self.lock();
        let v = find_mut(&mut state, name, version).expect("known key version");
        v.key_ops = ops.iter().map(|s| s.to_string()).collect();
    }

    /// Refuses every request for key `name` with 403.
    pub fn deny(&self, name: &str, deny: Deny) {
        self.lock().denied.insert(name.to_string(), deny);
    }

    /// Lifts a [`deny`](Self::deny) of key `name`.
    pub fn allow(&self, name: &str) {
        self.lock().denied.remove(name);
    }

    /// The current version of key `name`.
    pub fn current_version(&self, name: &str) -> Option<String> {
        self.lock()
            .keys
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v.id.clone())
    }

    /// The public key of a version, as SPKI PEM.
    pub fn public_key_pem(&self, name: &str, version: &str) -> String {
        use pkcs8::EncodePublicKey;
        let state = self.lock();
        let v = find(&state, name, Some(version)).expect("known key version");
        let pem = match &v.key {
            Private::Rsa(k) => k.to_public_key().to_public_key_pem(Default::default()),
            Private::P256(k) => k.public_key().to_public_key_pem(Default::default()),
            Private::P384(k) => k.public_key().to_public_key_pem(Default::default()),
            Private::K256(k) => k.public_key().to_public_key_pem(Default::default()),
        };
        pem.expect("encode public key")
    }

    /// Injects `fault` into the next `times` key requests.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut state = self.lock();
        for _ in 0..times {
            state.faults.push_back(fault);
        }
    }

    /// Injects `fault` into every key request until [`clear_faults`](Self::clear_faults).
    pub fn inject_always(&self, fault: Fault) {
        self.lock().storm = Some(fault);
    }

    /// Injects `fault` into the next `times` requests to the Entra token endpoint
    /// (`Throttle` and `Status` answer as Entra does, with an `AADSTS` error: `invalid_client`
    /// for a 4xx status, `temporarily_unavailable` for 5xx; `Tamper` answers 200 with a body
    /// that is not a token).
    pub fn inject_token(&self, fault: Fault, times: usize) {
        let mut state = self.lock();
        for _ in 0..times {
            state.token_faults.push_back(fault);
        }
    }

    /// Injects `fault` into every token request until [`clear_faults`](Self::clear_faults).
    pub fn inject_token_always(&self, fault: Fault) {
        self.lock().token_storm = Some(fault);
    }

    /// Makes the token endpoint issue tokens valid for `lifetime` (default 3599 s). Below the
    /// SDK's 5-minute refresh margin, every vault request first asks for a new token; at zero
    /// the token has expired when it arrives (the vault still takes it), so a client never
    /// falls back on the token it holds when getting a new one fails.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = Some(lifetime.as_secs());
    }

    /// Breaks TLS for new connections and closes the open ones (so pooled connections do not
    /// hide the fault), until [`clear_faults`](Self::clear_faults).
    pub fn break_tls(&self, fault: TlsFault) {
        let generation = {
            let mut state = self.lock();
            state.tls_fault = Some(fault);
            state.tls_generation += 1;
            state.tls_generation
        };
        // Closed now, not at their next request: a client's pool sees them go, as it would
        // when a real endpoint restarts, instead of meeting each stale one as a failed attempt.
        self.tls_changed.send_replace(generation);
    }

    /// Deletes key `name`, all versions: later requests for it get 404 `KeyNotFound`.
    pub fn delete_key(&self, name: &str) {
        self.lock().keys.remove(name);
    }

    /// Removes all pending and permanent faults, on key requests, token requests and TLS.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.storm = None;
        state.token_faults.clear();
        state.token_storm = None;
        state.tls_fault = None;
    }

    /// How many requests of a kind were served: `challenge` (401s), `token`, `get`, `sign`,
    /// `verify`, `create`, `throttled`, `fault` (any injected fault), `denied`, `not_found`,
    /// `token_fault` (faults injected into token requests), `tls_fault` (connections met
    /// with a broken TLS layer).
    pub fn count(&self, what: &str) -> u64 {
        self.lock().counts.get(what).copied().unwrap_or(0)
    }

    /// Every request served so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.lock().served.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn find<'a>(state: &'a State, name: &str, version: Option<&str>) -> Option<&'a Version> {
    let versions = state.keys.get(name)?;
    match version {
        None | Some("") => versions.last(),
        Some(v) => versions.iter().find(|k| k.id == v),
    }
}

fn find_mut<'a>(
    state: &'a mut State,
    name: &str,
    version: Option<&str>,
) -> Option<&'a mut Version> {
    let versions = state.keys.get_mut(name)?;
    match version {
        None | Some("") => versions.last_mut(),
        Some(v) => versions.iter_mut().find(|k| k.id == v),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn request_id() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn generate(spec: KeySpec) -> Private {
    match spec {
        KeySpec::Rsa(bits) => Private::Rsa(Box::new(rsa_key_pool::rsa(bits, &mut OsRng))),
        KeySpec::P256 => Private::P256(p256::SecretKey::random(&mut OsRng)),
        KeySpec::P384 => Private::P384(p384::SecretKey::random(&mut OsRng)),
        KeySpec::P256K => Private::K256(k256::SecretKey::random(&mut OsRng)),
    }
}

fn parse_private_pem(pem: &str) -> Option<Private> {
    use pkcs1::DecodeRsaPrivateKey;
    use pkcs8::DecodePrivateKey;
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
        return Some(Private::Rsa(Box::new(k)));
    }
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_pem(pem) {
        return Some(Private::Rsa(Box::new(k)));
    }
    if let Ok(k) =
        p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem))
    {
        return Some(Private::P256(k));
    }
    if let Ok(k) =
        p384::SecretKey::from_pkcs8_pem(pem).or_else(|_| p384::SecretKey::from_sec1_pem(pem))
    {
        return Some(Private::P384(k));
    }
    if let Ok(k) =
        k256::SecretKey::from_pkcs8_pem(pem).or_else(|_| k256::SecretKey::from_sec1_pem(pem))
    {
        return Some(Private::K256(k));
    }
    None
}

fn make_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "remote-signer Key Vault emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "*.vault.azure.net".to_string(),
    ])
    .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "Key Vault emulator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), Arc::new(config))
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    untrusted: tokio_rustls::TlsAcceptor,
    state: Shared,
    tls_change: tokio::sync::watch::Receiver<u64>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, usually: let connections close instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let (tls_fault, generation) = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if s.tls_fault.is_some() {
                *s.counts.entry("tls_fault").or_default() += 1;
            }
            (s.tls_fault, s.tls_generation)
        };
        let acceptor = match tls_fault {
            None => acceptor.clone(),
            Some(TlsFault::UntrustedCertificate) => untrusted.clone(),
            Some(TlsFault::AbortHandshake) => {
                drop(tcp);
                continue;
            }
        };
        let state = state.clone();
        let mut tls_change = tls_change.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req| handle(state.clone(), generation, req));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            // Dropped (closed) once the TLS layer changes after it was opened.
            let _ = tokio::select! {
                served = connection => served,
                _ = tls_change.wait_for(|now| *now != generation) => Ok(()),
            };
        });
    }
}

/// The error a service returns to make hyper drop the connection.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: &Value, extra: &[(&str, String)]) -> Reply {
    let text = serde_json::to_vec(body).expect("json");
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("x-ms-keyvault-service-version", "1.9.12.0")
        .header("x-ms-keyvault-region", "westus")
        .header("x-ms-request-id", request_id());
    for (name, value) in extra {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(text)))
        .expect("response")
}

fn error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Reply {
    let mut err = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        err["innererror"] = json!({ "code": inner });
    }
    reply(status, &json!({ "error": err }), &[])
}

async fn handle(state: Shared, generation: u64, req: Request<Incoming>) -> Result<Reply, Dropped> {
    if state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .tls_generation
        != generation
    {
        // Opened before the TLS layer changed: close it, as a restarted endpoint would.
        return Err(Dropped);
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let identity_header = req
        .headers()
        .get("x-identity-header")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let record = |state: &Shared, status: u16| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.served.push(Served {
            method: method.clone(),
            path: path.clone(),
            authorized: bearer.is_some(),
            status,
        });
    };
    let bump = |state: &Shared, what: &'static str| {
        *state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
            .entry(what)
            .or_default() += 1;
    };

    if path == format!("/{TENANT_ID}/oauth2/v2.0/token") && method == "POST" {
        bump(&state, "token");
        let fault = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.token_faults.pop_front().or(s.token_storm)
        };
        if let Some(fault) = fault {
            bump(&state, "token_fault");
            let response = match fault {
                Fault::Throttle(after) => {
                    let mut response = entra_error(
                        429,
                        "temporarily_unavailable",
                        50196,
                        "The server terminated an operation because it encountered a loop.",
                    );
                    let header = match after {
                        Some(RetryAfter::Seconds(s)) => Some(("Retry-After", s.to_string())),
                        Some(RetryAfter::Millis(ms)) => Some(("retry-after-ms", ms.to_string())),
                        None => None,
                    };
                    if let Some((name, value)) = header {
                        response
                            .headers_mut()
                            .insert(name, value.parse().expect("header"));
                    }
                    response
                }
                // A 4xx is a refusal (a secret rotated away), a 5xx an outage.
                Fault::Status(status) if status < 500 => entra_error(
                    status,
                    "invalid_client",
                    7000222,
                    "The provided client secret keys for app are expired.",
                ),
                Fault::Status(status) => entra_error(
                    status,
                    "temporarily_unavailable",
                    50000,
                    "There was an error issuing a token or an issue with our sign-in service.",
                ),
                Fault::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    token_endpoint(&state, &body)
                }
                Fault::Drop => {
                    record(&state, 0);
                    return Err(Dropped);
                }
                Fault::Tamper => Response::builder()
                    .status(200)
                    .header("Content-Type", "text/html")
                    .body(Full::new(Bytes::from_static(
                        b"<html>captive portal</html>",
                    )))
                    .expect("response"),
            };
            record(&state, response.status().as_u16());
            return Ok(response);
        }
        let response = token_endpoint(&state, &body);
        record(&state, response.status().as_u16());
        return Ok(response);
    }
    if path == "/msi/token" && method == "GET" {
        bump(&state, "token");
        let header_ok = identity_header.as_deref() == Some(IDENTITY_HEADER);
        let resource_ok = query.split('&').any(|p| {
            p == "resource=https%3A%2F%2Fvault.azure.net" || p == format!("resource={RESOURCE}")
        });
        let response = if header_ok && resource_ok {
            let token = random_hex(32);
            state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tokens
                .insert(token.clone());
            reply(
                200,
                &json!({
                    "access_token": token,
                    "expires_on": (now() + 3600).to_string(),
                    "resource": RESOURCE,
                    "token_type": "Bearer",
                    "client_id": CLIENT_ID,
                }),
                &[],
            )
        } else {
            reply(
                400,
                &json!({"error": "invalid_request", "error_description": "bad identity request"}),
                &[],
            )
        };
        record(&state, response.status().as_u16());
        return Ok(response);
    }
    if !path.starts_with("/keys/") {
        let response = error(
            404,
            "NotFound",
            "The requested resource was not found.",
            None,
        );
        record(&state, 404);
        return Ok(response);
    }

    // The challenge: any key request without a token (or with one this vault did not issue).
    let known = bearer.as_ref().is_some_and(|t| {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens
            .contains(t)
    });
    if !known {
        bump(&state, "challenge");
        let message = if bearer.is_none() {
            "AKV10000: Request is missing a Bearer or PoP token."
        } else {
            "AKV10032: Invalid issuer."
        };
        let mut response = error(401, "Unauthorized", message, None);
        response.headers_mut().insert(
            "WWW-Authenticate",
            format!("Bearer authorization=\"https://login.windows.net/{TENANT_ID}\", resource=\"{RESOURCE}\"")
                .parse()
                .expect("header"),
        );
        record(&state, 401);
        return Ok(response);
    }

    let fault = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.faults.pop_front().or(s.storm)
    };
    let mut tamper = false;
    if let Some(fault) = fault {
        bump(&state, "fault");
        match fault {
            Fault::Throttle(after) => {
                bump(&state, "throttled");
                let extra = match after {
                    Some(RetryAfter::Seconds(s)) => vec![("Retry-After", s.to_string())],
                    Some(RetryAfter::Millis(ms)) => vec![("retry-after-ms", ms.to_string())],
                    None => vec![],
                };
                let body = json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}});
                record(&state, 429);
                return Ok(reply(429, &body, &extra));
            }
            Fault::Status(status) => {
                record(&state, status);
                return Ok(error(
                    status,
                    "InternalServerError",
                    "The server encountered an internal error.",
                    None,
                ));
            }
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::Drop => {
                record(&state, 0);
                return Err(Dropped);
            }
            Fault::Tamper => tamper = true,
        }
    }

    if !query.split('&').any(|p| p.starts_with("api-version=")) {
        record(&state, 400);
        return Ok(error(
            400,
            "BadParameter",
            "The api-version query parameter is missing.",
            None,
        ));
    }

    let response = keys(&state, &method, &path, &host, &body, tamper);
    let status = response.status().as_u16();
    match status {
        403 => bump(&state, "denied"),
        404 => bump(&state, "not_found"),
        _ => {}
    }
    record(&state, status);
    Ok(response)
}

/// An Entra error reply, as the token endpoint sends it.
fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    reply(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": request_id(),
            "correlation_id": request_id(),
        }),
        &[],
    )
}

fn token_endpoint(state: &Shared, body: &[u8]) -> Reply {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let aad_error = entra_error;
    if field("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != CLIENT_ID {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            "Application not found in the directory.",
        );
    }
    if field("scope") != format!("{RESOURCE}/.default") {
        return aad_error(
            400,
            "invalid_scope",
            70011,
            "The provided value for scope is not valid.",
        );
    }
    let secret_ok = field("client_secret") == CLIENT_SECRET;
    let assertion_ok = field("client_assertion_type")
        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        && field("client_assertion") == FEDERATED_TOKEN;
    if !secret_ok && !assertion_ok {
        return aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    let token = random_hex(32);
    let lifetime = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.tokens.insert(token.clone());
        s.token_lifetime.unwrap_or(3599)
    };
    reply(
        200,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
        &[],
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(version: &Version, kid: &str) -> Value {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use rsa::traits::PublicKeyParts;
    let mut key = json!({ "kid": kid });
    let ec = |crv: &str, point: &[u8]| {
        let half = (point.len() - 1) / 2;
        (
            crv.to_string(),
            b64(&point[1..1 + half]),
            b64(&point[1 + half..]),
        )
    };
    let (crv, x, y) = match &version.key {
        Private::Rsa(k) => {
            key["kty"] = json!(if version.hsm { "RSA-HSM" } else { "RSA" });
            key["key_ops"] = json!(version.key_ops);
            key["n"] = json!(b64(&k.n().to_bytes_be()));
            key["e"] = json!(b64(&k.e().to_bytes_be()));
            return key;
        }
        Private::P256(k) => ec("P-256", k.public_key().to_encoded_point(false).as_bytes()),
        Private::P384(k) => ec("P-384", k.public_key().to_encoded_point(false).as_bytes()),
        Private::K256(k) => ec("P-256K", k.public_key().to_encoded_point(false).as_bytes()),
    };
    key["kty"] = json!(if version.hsm { "EC-HSM" } else { "EC" });
    key["key_ops"] = json!(version.key_ops);
    key["crv"] = json!(crv);
    key["x"] = json!(x);
    key["y"] = json!(y);
    key
}

fn bundle(version: &Version, kid: &str) -> Value {
    let a = &version.attributes;
    let mut attributes = json!({
        "enabled": a.enabled,
        "created": version.created,
        "updated": version.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    });
    if let Some(nbf) = a.not_before {
        attributes["nbf"] = json!(nbf);
    }
    if let Some(exp) = a.expires {
        attributes["exp"] = json!(exp);
    }
    json!({ "key": jwk(version, kid), "attributes": attributes })
}

/// Why a version may not be used now, as the service words it.
fn unusable(version: &Version, op: &str) -> Option<Reply> {
    let a = &version.attributes;
    let now = now();
    let (inner, message) = if !a.enabled {
        (
            "KeyDisabled",
            format!("Operation {op} is not allowed on a disabled key."),
        )
    } else if a.not_before.is_some_and(|nbf| now < nbf) {
        (
            "KeyNotYetValid",
            format!("Operation {op} is not allowed on a key that is not yet valid."),
        )
    } else if a.expires.is_some_and(|exp| now >= exp) {
        (
            "KeyExpired",
            format!("Operation {op} is not allowed on an expired key."),
        )
    } else {
        return None;
    };
    Some(error(403, "Forbidden", &message, Some(inner)))
}

fn keys(state: &Shared, method: &str, path: &str, host: &str, body: &[u8], tamper: bool) -> Reply {
    // /keys/{name}/{version?}[/{operation}]
    let segments: Vec<&str> = path.trim_start_matches("/keys/").split('/').collect();
    let (name, version, op) = match (method, segments.as_slice()) {
        ("GET", [name]) | ("GET", [name, ""]) => (*name, "", "get"),
        ("GET", [name, version]) => (*name, *version, "get"),
        ("POST", [name, "create"]) => (*name, "", "create"),
        ("POST", [name, version, op @ ("sign" | "verify")]) => (*name, *version, *op),
        _ => return error(400, "BadParameter", "The request URI is not valid.", None),
    };
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(deny) = s.denied.get(name) {
        return match deny {
            Deny::AccessPolicy => error(
                403,
                "Forbidden",
                &format!(
                    "The user, group or application 'appid={CLIENT_ID};oid=...;iss=https://sts.windows.net/{TENANT_ID}/' does not have keys {op} permission on key vault 'emulator;location=westus'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
                ),
                Some("AccessDenied"),
            ),
            Deny::Rbac => error(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: emulator;location=westus\r\n",
                Some("ForbiddenByRbac"),
            ),
        };
    }
    *s.counts
        .entry(match op {
            "get" => "get",
            "create" => "create",
            "sign" => "sign",
            _ => "verify",
        })
        .or_default() += 1;
    if op == "create" {
        drop(s);
        return create(state, name, host, body);
    }
    let Some(v) = find(&s, name, Some(version)) else {
        let what = if version.is_empty() {
            name.to_string()
        } else {
            format!("{name}/{version}")
        };
        return error(
            404,
            "KeyNotFound",
            &format!(
                "A key with (name/id) {what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
            None,
        );
    };
    let kid = format!("https://{host}/keys/{name}/{}", v.id);
    match op {
        "get" => reply(200, &bundle(v, &kid), &[]),
        "sign" | "verify" => {
            if let Some(refusal) = unusable(v, op) {
                return refusal;
            }
            if !v.key_ops.iter().any(|o| o == op) {
                return error(
                    403,
                    "Forbidden",
                    &format!("Operation {op} is not permitted on this key."),
                    Some("KeyOperationForbidden"),
                );
            }
            let Ok(request) = serde_json::from_slice::<Value>(body) else {
                return error(400, "BadParameter", "Request body is not valid JSON.", None);
            };
            let alg = request["alg"].as_str().unwrap_or_default();
            let field = |k: &str| {
                request[k]
                    .as_str()
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            };
            if op == "sign" {
                let Some(digest) = field("value") else {
                    return error(400, "BadParameter", "Property value is required.", None);
                };
                match sign(&v.key, alg, &digest) {
                    Ok(mut sig) => {
                        if tamper {
                            sig[0] ^= 1;
                        }
                        reply(200, &json!({"kid": kid, "value": b64(&sig)}), &[])
                    }
                    Err(why) => error(400, "BadParameter", why, None),
                }
            } else {
                let (Some(digest), Some(sig)) = (field("digest"), field("value")) else {
                    return error(
                        400,
                        "BadParameter",
                        "Properties digest and value are required.",
                        None,
                    );
                };
                match verify(&v.key, alg, &digest, &sig) {
                    Ok(ok) => reply(200, &json!({"value": ok}), &[]),
                    Err(why) => error(400, "BadParameter", why, None),
                }
            }
        }
        _ => unreachable!(),
    }
}

fn create(state: &Shared, name: &str, host: &str, body: &[u8]) -> Reply {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(400, "BadParameter", "Request body is not valid JSON.", None);
    };
    let spec = match (request["kty"].as_str(), request["crv"].as_str()) {
        (Some("RSA" | "RSA-HSM"), _) => {
            let bits = request["key_size"].as_u64().unwrap_or(2048) as usize;
            if ![2048, 3072, 4096].contains(&bits) {
                return error(400, "BadParameter", "Invalid key size.", None);
            }
            KeySpec::Rsa(bits)
        }
        (Some("EC" | "EC-HSM"), Some("P-256") | None) => KeySpec::P256,
        (Some("EC" | "EC-HSM"), Some("P-384")) => KeySpec::P384,
        (Some("EC" | "EC-HSM"), Some("P-256K")) => KeySpec::P256K,
        _ => return error(400, "BadParameter", "Unsupported key type or curve.", None),
    };
    let key = generate(spec);
    let id = random_hex(16);
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let versions = s.keys.entry(name.to_string()).or_default();
    versions.push(Version {
        id: id.clone(),
        key,
        attributes: Attributes::default(),
        created: now(),
        key_ops: vec!["sign".into(), "verify".into()],
        hsm: request["kty"].as_str().is_some_and(|k| k.ends_with("-HSM")),
    });
    let v = versions.last().expect("just pushed");
    reply(
        200,
        &bundle(v, &format!("https://{host}/keys/{name}/{id}")),
        &[],
    )
}

fn hash_len(alg: &str) -> Option<usize> {
    match alg {
        "RS256" | "PS256" | "ES256" | "ES256K" => Some(32),
        "RS384" | "PS384" | "ES384" => Some(48),
        "RS512" | "PS512" => Some(64),
        _ => None,
    }
}

fn sign(key: &Private, alg: &str, digest: &[u8]) -> Result<Vec<u8>, &'static str> {
    use signature::hazmat::PrehashSigner;
    let len = hash_len(alg).ok_or("Invalid algorithm.")?;
    if digest.len() != len {
        return Err("Invalid digest length.");
    }
    let bad = "The algorithm does not match the key type.";
    match (key, alg) {
        (Private::Rsa(k), "RS256") => k.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest),
        (Private::Rsa(k), "RS384") => k.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest),
        (Private::Rsa(k), "RS512") => k.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest),
        (Private::Rsa(k), "PS256") => {
            k.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha256>(), digest)
        }
        (Private::Rsa(k), "PS384") => {
            k.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha384>(), digest)
        }
        (Private::Rsa(k), "PS512") => {
            k.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha512>(), digest)
        }
        (Private::P256(k), "ES256") => {
            let s: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k)
                .sign_prehash(digest)
                .map_err(|_| bad)?;
            return Ok(s.to_vec());
        }
        (Private::P384(k), "ES384") => {
            let s: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k)
                .sign_prehash(digest)
                .map_err(|_| bad)?;
            return Ok(s.to_vec());
        }
        (Private::K256(k), "ES256K") => {
            let s: k256::ecdsa::Signature = k256::ecdsa::SigningKey::from(k)
                .sign_prehash(digest)
                .map_err(|_| bad)?;
            return Ok(s.to_vec());
        }
        _ => return Err(bad),
    }
    .map_err(|_| bad)
}

fn verify(key: &Private, alg: &str, digest: &[u8], sig: &[u8]) -> Result<bool, &'static str> {
    use signature::hazmat::PrehashVerifier;
    let len = hash_len(alg).ok_or("Invalid algorithm.")?;
    if digest.len() != len {
        return Err("Invalid digest length.");
    }
    let bad = "The algorithm does not match the key type.";
    Ok(match (key, alg) {
        (Private::Rsa(k), _) if alg.starts_with("RS") || alg.starts_with("PS") => {
            let public = k.to_public_key();
            match alg {
                "RS256" => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig),
                "RS384" => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, sig),
                "RS512" => public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, sig),
                "PS256" => public.verify(rsa::Pss::new::<sha2::Sha256>(), digest, sig),
                "PS384" => public.verify(rsa::Pss::new::<sha2::Sha384>(), digest, sig),
                _ => public.verify(rsa::Pss::new::<sha2::Sha512>(), digest, sig),
            }
            .is_ok()
        }
        (Private::P256(k), "ES256") => p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| {
            p256::ecdsa::VerifyingKey::from(k.public_key())
                .verify_prehash(digest, &s)
                .is_ok()
        }),
        (Private::P384(k), "ES384") => p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| {
            p384::ecdsa::VerifyingKey::from(k.public_key())
                .verify_prehash(digest, &s)
                .is_ok()
        }),
        (Private::K256(k), "ES256K") => k256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| {
            let s = s.normalize_s().unwrap_or(s);
            k256::ecdsa::VerifyingKey::from(k.public_key())
                .verify_prehash(digest, &s)
                .is_ok()
        }),
        _ => return Err(bad),
    })
}
