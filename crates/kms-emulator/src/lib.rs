//! A local AWS KMS emulator for remote-signer's tests and benchmarks.
//!
//! It speaks the service's JSON 1.1 protocol (`POST /`, `X-Amz-Target: TrentService.<Op>`,
//! `application/x-amz-json-1.1`) over plain HTTP on loopback, which the official SDK reaches
//! through its endpoint override (`AWS_ENDPOINT_URL_KMS`). Every request must carry a valid
//! SigV4 signature for one of the emulator's credentials, verified by hand from the
//! specification: a wrong secret gets `InvalidSignatureException`, an unknown access key
//! `UnrecognizedClientException`, an expired session `ExpiredTokenException`, as AWS answers.
//!
//! Operations: `CreateKey`, `DescribeKey`, `GetPublicKey`, `Sign` (`DIGEST` and `RAW`),
//! `Verify`, `CreateAlias`, `UpdateAlias`, `DeleteAlias`, `EnableKey`, `DisableKey`,
//! `ScheduleKeyDeletion`, `CancelKeyDeletion`. Keys are RSA 2048-4096, P-256, P-384,
//! secp256k1, Ed25519 (sign/verify; RSA also for encryption) and symmetric keys; a key can be
//! named by id, key ARN, alias name or alias ARN. Error bodies are `{"__type", "message"}`
//! with the service's status codes and an `x-amzn-RequestId` header.
//!
//! On demand: throttling and 5xx faults for the next N requests of an operation, latency, a
//! policy that refuses an action on a key, corrupted signatures. Every request is counted per
//! operation. Randomness (key material, ids) is seeded, except that RSA-2048 keys come from
//! [`rsa_key_pool`] while it lasts: the same keys in the same order in every process, distinct
//! from every other emulator's, whatever the seed.

mod keys;
mod sigv4;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

pub use keys::KeySpec;
use keys::Material;

/// The account every key belongs to.
pub const ACCOUNT: &str = "111122223333";
/// The access key id of the credentials the emulator starts with.
pub const ACCESS_KEY_ID: &str = "AKIAEMULATOR000000001";
/// Their secret.
pub const SECRET_ACCESS_KEY: &str = "emulator/secret/key/0123456789abcdefghij";

const MAX_BODY: usize = 1 << 20;

/// A fault the emulator answers with instead of doing the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `400 ThrottlingException` ("Rate exceeded").
    Throttling,
    /// `500 KMSInternalException`.
    Internal,
    /// `503 DependencyTimeoutException`.
    DependencyTimeout,
    /// A `502` with an HTML body, as a proxy in front of the service might answer.
    BadGateway,
}

/// A key's lifecycle state (`KeyState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// `Enabled`.
    Enabled,
    /// `Disabled`.
    Disabled,
    /// `PendingDeletion`.
    PendingDeletion,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

struct Key {
    id: String,
    region: String,
    spec: KeySpec,
    usage: &'static str,
    state: KeyState,
    description: String,
    created: f64,
    deletion: Option<f64>,
    material: Material,
}

/// The partition a region belongs to.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl Key {
    fn arn(&self) -> String {
        format!(
            "arn:{}:kms:{}:{ACCOUNT}:key/{}",
            partition(&self.region),
            self.region,
            self.id
        )
    }
}

struct Credential {
    secret: String,
    session_token: Option<String>,
    expired: bool,
}

struct State {
    rng: ChaCha20Rng,
    keys: HashMap<String, Key>,
    /// (region, alias name with `alias/`) to key id.
    aliases: HashMap<(String, String), String>,
    credentials: HashMap<String, Credential>,
    /// Keyed by (key id, or "" for requests that name no known key; operation).
    faults: HashMap<(String, String), VecDeque<Fault>>,
    latency: HashMap<(String, String), Duration>,
    denied: HashSet<(String, String)>,
    corrupt: HashSet<String>,
    counts: BTreeMap<(String, String), u64>,
    /// Per key id: the `MessageType` and message length of the last `Sign` request.
    last_sign: HashMap<String, (String, usize)>,
}

/// A running emulator on `127.0.0.1`; stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the emulator answers with: a status, the error code (for errors) and a JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({"__type": code, "message": message.into()}),
    }
}

/// The key id at the end of a key ARN (or the id itself).
fn id_of(key_arn: &str) -> String {
    key_arn.rsplit('/').next().unwrap_or_default().to_string()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as f64
        / 1000.0
}

impl Emulator {
    /// Starts an emulator on a free loopback port with the default credentials
    /// ([`ACCESS_KEY_ID`], [`SECRET_ACCESS_KEY`]) and randomness seeded with `seed`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(seed: u64) -> Emulator {
        let mut credentials = HashMap::new();
        credentials.insert(
            ACCESS_KEY_ID.to_string(),
            Credential {
                secret: SECRET_ACCESS_KEY.to_string(),
                session_token: None,
                expired: false,
            },
        );
        let state = Arc::new(Mutex::new(State {
            rng: ChaCha20Rng::seed_from_u64(seed),
            keys: HashMap::new(),
            aliases: HashMap::new(),
            credentials,
            faults: HashMap::new(),
            latency: HashMap::new(),
            denied: HashSet::new(),
            corrupt: HashSet::new(),
            counts: BTreeMap::new(),
            last_sign: HashMap::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking socket");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("emulator runtime");
            runtime.block_on(serve(listener, served, rx));
        });
        Emulator {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL_KMS`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a key in `region` and returns its key ARN.
    pub fn create_key(&self, region: &str, spec: KeySpec, usage: &str) -> String {
        let mut state = self.state();
        let State { rng, keys, .. } = &mut *state;
        let key = new_key(rng, region, spec, usage, "").expect("valid key spec and usage");
        let arn = key.arn();
        keys.insert(key.id.clone(), key);
        arn
    }

    /// Points `alias` (`alias/<name>`) in `region` at the key `key_arn`, creating or moving it.
    pub fn set_alias(&self, region: &str, alias: &str, key_arn: &str) {
        let id = id_of(key_arn);
        self.state()
            .aliases
            .insert((region.to_string(), alias.to_string()), id);
    }

    /// Sets a key's state.
    pub fn set_state(&self, key_arn: &str, key_state: KeyState) {
        if let Some(key) = self.state().keys.get_mut(&id_of(key_arn)) {
            key.state = key_state;
            key.deletion = (key_state == KeyState::PendingDeletion).then(|| now() + 7.0 * 86400.0);
        }
    }

    /// The key's public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self, key_arn: &str) -> Option<Vec<u8>> {
        self.state()
            .keys
            .get(&id_of(key_arn))
            .and_then(|k| k.material.spki_der())
    }

    /// Refuses `action` (`kms:Sign`, `kms:GetPublicKey`, ...) on the key with
    /// `AccessDeniedException`.
    pub fn deny(&self, key_arn: &str, action: &str) {
        self.state()
            .denied
            .insert((id_of(key_arn), action.to_string()));
    }

    /// Answers the next `times` requests for `operation` (`Sign`, `GetPublicKey`, ...) on the
    /// key `key_arn` with `fault`.
    pub fn fail_next(&self, key_arn: &str, operation: &str, times: usize, fault: Fault) {
        let slot = (id_of(key_arn), operation.to_string());
        let mut state = self.state();
        let queue = state.faults.entry(slot).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Delays every answer to `operation` on the key `key_arn` by `delay`.
    pub fn set_latency(&self, key_arn: &str, operation: &str, delay: Duration) {
        let slot = (id_of(key_arn), operation.to_string());
        self.state().latency.insert(slot, delay);
    }

    /// Returns signatures from the key with one byte flipped.
    pub fn corrupt_signatures(&self, key_arn: &str) {
        self.state().corrupt.insert(id_of(key_arn));
    }

    /// Adds credentials (with a session token for temporary ones).
    pub fn add_credentials(&self, access_key_id: &str, secret: &str, session_token: Option<&str>) {
        self.state().credentials.insert(
            access_key_id.to_string(),
            Credential {
                secret: secret.to_string(),
                session_token: session_token.map(str::to_string),
                expired: false,
            },
        );
    }

    /// Marks temporary credentials as expired.
    pub fn expire_credentials(&self, access_key_id: &str) {
        if let Some(c) = self.state().credentials.get_mut(access_key_id) {
            c.expired = true;
        }
    }

    /// Authenticated requests received for `operation` on the key `key_arn` (however the
    /// request named it: id, ARN or alias), whatever their outcome.
    pub fn count(&self, key_arn: &str, operation: &str) -> u64 {
        let slot = (id_of(key_arn), operation.to_string());
        self.state().counts.get(&slot).copied().unwrap_or(0)
    }

    /// Requests received for `operation`, on any key or none, whatever their outcome (refused
    /// signatures included).
    pub fn total(&self, operation: &str) -> u64 {
        self.state()
            .counts
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// The `MessageType` and message length of the last `Sign` request on the key.
    pub fn last_sign(&self, key_arn: &str) -> Option<(String, usize)> {
        self.state().last_sign.get(&id_of(key_arn)).cloned()
    }

    /// Calls `operation` with `input` as a client would, without HTTP or SigV4 (for fidelity
    /// checks against the API reference's examples), in `region`.
    pub fn call(&self, region: &str, operation: &str, input: &Value) -> (u16, Value) {
        let answer = dispatch(&mut self.state(), region, operation, input);
        (answer.status, answer.body)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(respond(
                &state,
                error(413, "RequestEntityTooLarge", "too large"),
            ));
        }
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(operation) = target.strip_prefix("TrentService.").map(str::to_string) else {
        return Ok(respond(
            &state,
            error(
                400,
                "UnknownOperationException",
                "missing or unknown X-Amz-Target",
            ),
        ));
    };
    let input = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object);
    // Authenticate, then count the request against the key it names (if any).
    let (region, key, latency) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let region = authenticate(&s, &parts, &body);
        let key = match (&region, &input) {
            (Ok(region), Some(input)) => {
                text(input, "KeyId").and_then(|id| resolve(&s, region, id).ok())
            }
            _ => None,
        };
        let slot = (key.clone().unwrap_or_default(), operation.clone());
        *s.counts.entry(slot.clone()).or_default() += 1;
        (region, key, s.latency.get(&slot).copied())
    };
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    let answer = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match region {
            Err(refusal) => refusal,
            Ok(region) => {
                let slot = (key.unwrap_or_default(), operation.clone());
                let fault = s.faults.get_mut(&slot).and_then(VecDeque::pop_front);
                match fault {
                    Some(Fault::Throttling) => error(400, "ThrottlingException", "Rate exceeded"),
                    Some(Fault::Internal) => error(
                        500,
                        "KMSInternalException",
                        "The request was rejected because an internal exception occurred.",
                    ),
                    Some(Fault::DependencyTimeout) => error(
                        503,
                        "DependencyTimeoutException",
                        "The system timed out while trying to fulfill the request.",
                    ),
                    Some(Fault::BadGateway) => {
                        return Ok(raw(&mut s, 502, "text/html", "<html>Bad Gateway</html>"));
                    }
                    None => match &input {
                        Some(input) => dispatch(&mut s, &region, &operation, input),
                        None => error(
                            400,
                            "SerializationException",
                            "the body is not a JSON object",
                        ),
                    },
                }
            }
        }
    };
    Ok(respond(&state, answer))
}

fn request_id(state: &mut State) -> String {
    keys::uuid(&mut state.rng)
}

fn raw(state: &mut State, status: u16, content_type: &str, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-RequestId", request_id(state))
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn respond(state: &Arc<Mutex<State>>, answer: Answer) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    raw(
        &mut s,
        answer.status,
        "application/x-amz-json-1.1",
        &answer.body.to_string(),
    )
}

/// Checks the SigV4 signature; returns the region the request was signed for.
fn authenticate(
    state: &State,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<String, Answer> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Err(error(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = || {
        error(
            400,
            "IncompleteSignatureException",
            "The request signature does not conform to AWS standards.",
        )
    };
    let auth = sigv4::parse_authorization(auth).ok_or_else(incomplete)?;
    let amz_date = header("x-amz-date").ok_or_else(incomplete)?;
    if auth.service != "kms"
        || !amz_date.starts_with(&auth.date)
        || !auth.signed_headers.iter().any(|h| h == "host")
        || !auth.signed_headers.iter().any(|h| h == "x-amz-date")
    {
        return Err(incomplete());
    }
    let invalid_token = || {
        error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let credential = state
        .credentials
        .get(&auth.access_key_id)
        .ok_or_else(invalid_token)?;
    if credential.session_token.as_deref() != header("x-amz-security-token") {
        return Err(invalid_token());
    }
    if credential.session_token.is_some()
        && !auth
            .signed_headers
            .iter()
            .any(|h| h == "x-amz-security-token")
    {
        return Err(incomplete());
    }
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let request = sigv4::Signed {
        method: parts.method.as_str(),
        path,
        query,
        headers: &parts.headers,
        amz_date,
        body,
    };
    let expected =
        sigv4::expected_signature(&auth, &credential.secret, &request).ok_or_else(incomplete)?;
    if !sigv4::same(&expected, &auth.signature) {
        return Err(error(
            400,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    if credential.expired {
        return Err(error(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    Ok(auth.region)
}

fn new_key(
    rng: &mut ChaCha20Rng,
    region: &str,
    spec: KeySpec,
    usage: &str,
    description: &str,
) -> Result<Key, Answer> {
    let usage: &'static str = match usage {
        "SIGN_VERIFY" if spec != KeySpec::SymmetricDefault => "SIGN_VERIFY",
        "ENCRYPT_DECRYPT" if matches!(spec, KeySpec::SymmetricDefault | KeySpec::Rsa(_)) => {
            "ENCRYPT_DECRYPT"
        }
        _ => {
            return Err(error(
                400,
                "ValidationException",
                format!(
                    "KeyUsage {usage} is not compatible with KeySpec {}",
                    spec.as_str()
                ),
            ));
        }
    };
    Ok(Key {
        id: keys::uuid(rng),
        region: region.to_string(),
        spec,
        usage,
        state: KeyState::Enabled,
        description: description.to_string(),
        created: now(),
        deletion: None,
        material: Material::generate(spec, rng),
    })
}

fn text<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// Finds the key a `KeyId` names: a key id, key ARN, alias name or alias ARN, in `region`.
fn resolve(state: &State, region: &str, key_id: &str) -> Result<String, Answer> {
    let not_found = || {
        error(
            400,
            "NotFoundException",
            format!(
                "Invalid keyId '{}'",
                key_id.chars().take(64).collect::<String>()
            ),
        )
    };
    let (region, resource) = if let Some(rest) = key_id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() != 5 || parts[1] != "kms" || parts[3] != ACCOUNT {
            return Err(not_found());
        }
        // An ARN of another region or partition is not found in this one.
        if parts[2] != region || parts[0] != partition(region) {
            return Err(error(
                400,
                "NotFoundException",
                format!("Invalid arn {region}"),
            ));
        }
        (parts[2], parts[4])
    } else {
        (region, key_id)
    };
    let id = if resource.starts_with("alias/") {
        state
            .aliases
            .get(&(region.to_string(), resource.to_string()))
            .cloned()
            .ok_or_else(|| {
                error(
                    400,
                    "NotFoundException",
                    format!(
                        "Alias arn:{}:kms:{region}:{ACCOUNT}:{resource} is not found.",
                        partition(region)
                    ),
                )
            })?
    } else {
        resource
            .strip_prefix("key/")
            .unwrap_or(resource)
            .to_string()
    };
    match state.keys.get(&id) {
        Some(key) if key.region == region => Ok(id),
        _ => Err(not_found()),
    }
}

fn usable(key: &Key) -> Result<(), Answer> {
    match key.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(error(
            400,
            "DisabledException",
            format!("{} is disabled.", key.arn()),
        )),
        KeyState::PendingDeletion => Err(error(
            400,
            "KMSInvalidStateException",
            format!("{} is pending deletion.", key.arn()),
        )),
    }
}

fn metadata(key: &Key) -> Value {
    let mut m = json!({
        "AWSAccountId": ACCOUNT,
        "KeyId": key.id,
        "Arn": key.arn(),
        "CreationDate": key.created,
        "Enabled": key.state == KeyState::Enabled,
        "Description": key.description,
        "KeyUsage": key.usage,
        "KeyState": key.state.as_str(),
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": key.spec.as_str(),
        "KeySpec": key.spec.as_str(),
        "MultiRegion": false,
    });
    if key.usage == "SIGN_VERIFY" {
        m["SigningAlgorithms"] = json!(key.spec.signing_algorithms());
    } else {
        m["EncryptionAlgorithms"] = json!(key.spec.encryption_algorithms());
    }
    if let Some(d) = key.deletion {
        m["DeletionDate"] = json!(d);
    }
    m
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, body }
}

fn dispatch(state: &mut State, region: &str, operation: &str, input: &Value) -> Answer {
    match run(state, region, operation, input) {
        Ok(answer) | Err(answer) => answer,
    }
}

fn denied(state: &State, key: &Key, action: &str) -> Result<(), Answer> {
    if state.denied.contains(&(key.id.clone(), action.to_string())) {
        return Err(error(
            400,
            "AccessDeniedException",
            format!(
                "User: arn:aws:iam::{ACCOUNT}:user/emulator is not authorized to perform: \
                 {action} on resource: {} because no identity-based policy allows the {action} \
                 action",
                key.arn()
            ),
        ));
    }
    Ok(())
}

fn run(state: &mut State, region: &str, operation: &str, input: &Value) -> Result<Answer, Answer> {
    let key_of = |state: &State, name: &str| -> Result<String, Answer> {
        let id = text(input, name).ok_or_else(|| {
            error(
                400,
                "ValidationException",
                format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", name),
            )
        })?;
        resolve(state, region, id)
    };
    match operation {
        "CreateKey" => {
            let spec = text(input, "KeySpec").unwrap_or("SYMMETRIC_DEFAULT");
            let spec = KeySpec::parse(spec).ok_or_else(|| {
                error(
                    400,
                    "ValidationException",
                    "KeySpec is not supported by the emulator",
                )
            })?;
            let usage = text(input, "KeyUsage").unwrap_or("ENCRYPT_DECRYPT");
            let description = text(input, "Description").unwrap_or("");
            let key = new_key(&mut state.rng, region, spec, usage, description)?;
            let body = json!({"KeyMetadata": metadata(&key)});
            state.keys.insert(key.id.clone(), key);
            Ok(ok(body))
        }
        "DescribeKey" => {
            let id = key_of(state, "KeyId")?;
            let key = &state.keys[&id];
            denied(state, key, "kms:DescribeKey")?;
            Ok(ok(json!({"KeyMetadata": metadata(key)})))
        }
        "GetPublicKey" => {
            let id = key_of(state, "KeyId")?;
            let key = &state.keys[&id];
            denied(state, key, "kms:GetPublicKey")?;
            usable(key)?;
            let der = key.material.spki_der().ok_or_else(|| {
                error(
                    400,
                    "UnsupportedOperationException",
                    format!(
                        "{} key type is not supported for this operation.",
                        key.arn()
                    ),
                )
            })?;
            let mut body = json!({
                "KeyId": key.arn(),
                "PublicKey": B64.encode(der),
                "CustomerMasterKeySpec": key.spec.as_str(),
                "KeySpec": key.spec.as_str(),
                "KeyUsage": key.usage,
            });
            if key.usage == "SIGN_VERIFY" {
                body["SigningAlgorithms"] = json!(key.spec.signing_algorithms());
            } else {
                body["EncryptionAlgorithms"] = json!(key.spec.encryption_algorithms());
            }
            Ok(ok(body))
        }
        "Sign" | "Verify" => {
            let id = key_of(state, "KeyId")?;
            let action = format!("kms:{operation}");
            {
                let key = &state.keys[&id];
                denied(state, key, &action)?;
                usable(key)?;
                if key.usage != "SIGN_VERIFY" {
                    return Err(error(
                        400,
                        "InvalidKeyUsageException",
                        format!(
                            "{} key usage is {} which is not valid for {operation}.",
                            key.arn(),
                            key.usage
                        ),
                    ));
                }
            }
            let algorithm = text(input, "SigningAlgorithm")
                .unwrap_or_default()
                .to_string();
            let message_type = text(input, "MessageType").unwrap_or("RAW");
            let message = text(input, "Message")
                .and_then(|m| B64.decode(m).ok())
                .ok_or_else(|| error(400, "ValidationException", "Message must be base64"))?;
            if message.is_empty() || message.len() > 4096 {
                return Err(error(
                    400,
                    "ValidationException",
                    "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096",
                ));
            }
            let key = &state.keys[&id];
            if !key.spec.signing_algorithms().contains(&algorithm.as_str()) {
                return Err(error(
                    400,
                    "InvalidKeyUsageException",
                    format!(
                        "Signing algorithm {} is not supported by {}.",
                        algorithm.chars().take(32).collect::<String>(),
                        key.arn()
                    ),
                ));
            }
            let digest = match message_type {
                "RAW" => keys::Prepared::Raw(&message),
                "DIGEST" => keys::Prepared::Digest(&message),
                _ => {
                    return Err(error(
                        400,
                        "ValidationException",
                        "MessageType must be RAW or DIGEST",
                    ));
                }
            };
            if operation == "Sign" {
                state
                    .last_sign
                    .insert(id.clone(), (message_type.to_string(), message.len()));
                let key = &state.keys[&id];
                let mut signature = key
                    .material
                    .sign(&algorithm, digest, &mut state.rng)
                    .map_err(|why| error(400, "ValidationException", why))?;
                if state.corrupt.contains(&id) {
                    let last = signature.len() - 1;
                    signature[last] ^= 1;
                }
                let key = &state.keys[&id];
                Ok(ok(json!({
                    "KeyId": key.arn(),
                    "Signature": B64.encode(signature),
                    "SigningAlgorithm": algorithm,
                })))
            } else {
                let signature = text(input, "Signature")
                    .and_then(|m| B64.decode(m).ok())
                    .ok_or_else(|| error(400, "ValidationException", "Signature must be base64"))?;
                let valid = key
                    .material
                    .verify(&algorithm, digest, &signature)
                    .map_err(|why| error(400, "ValidationException", why))?;
                if !valid {
                    return Err(error(400, "KMSInvalidSignatureException", ""));
                }
                Ok(ok(json!({
                    "KeyId": key.arn(),
                    "SignatureValid": true,
                    "SigningAlgorithm": algorithm,
                })))
            }
        }
        "CreateAlias" | "UpdateAlias" => {
            let alias = text(input, "AliasName").unwrap_or_default().to_string();
            let valid = alias.strip_prefix("alias/").is_some_and(|n| {
                !n.is_empty()
                    && !n.starts_with("aws/")
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
            });
            if !valid {
                return Err(error(400, "ValidationException", "Invalid alias name"));
            }
            let id = key_of(state, "TargetKeyId")?;
            let slot = (region.to_string(), alias);
            let exists = state.aliases.contains_key(&slot);
            if operation == "CreateAlias" && exists {
                return Err(error(
                    400,
                    "AlreadyExistsException",
                    format!(
                        "An alias with the name arn:aws:kms:{region}:{ACCOUNT}:{} already exists",
                        slot.1
                    ),
                ));
            }
            if operation == "UpdateAlias" && !exists {
                return Err(error(400, "NotFoundException", "Alias is not found."));
            }
            state.aliases.insert(slot, id);
            Ok(ok(json!({})))
        }
        "DeleteAlias" => {
            let alias = text(input, "AliasName").unwrap_or_default().to_string();
            state
                .aliases
                .remove(&(region.to_string(), alias))
                .ok_or_else(|| error(400, "NotFoundException", "Alias is not found."))?;
            Ok(ok(json!({})))
        }
        "EnableKey" | "DisableKey" | "CancelKeyDeletion" | "ScheduleKeyDeletion" => {
            let id = key_of(state, "KeyId")?;
            let key = state.keys.get_mut(&id).expect("resolved");
            match operation {
                "EnableKey" | "DisableKey" if key.state == KeyState::PendingDeletion => {
                    return Err(error(
                        400,
                        "KMSInvalidStateException",
                        format!("{} is pending deletion.", key.arn()),
                    ));
                }
                "EnableKey" => key.state = KeyState::Enabled,
                "DisableKey" => key.state = KeyState::Disabled,
                "CancelKeyDeletion" => {
                    if key.state != KeyState::PendingDeletion {
                        return Err(error(
                            400,
                            "KMSInvalidStateException",
                            format!("{} is not pending deletion.", key.arn()),
                        ));
                    }
                    key.state = KeyState::Disabled;
                    key.deletion = None;
                    return Ok(ok(json!({"KeyId": key.arn()})));
                }
                _ => {
                    let days = input
                        .get("PendingWindowInDays")
                        .and_then(Value::as_u64)
                        .unwrap_or(30);
                    if !(7..=30).contains(&days) {
                        return Err(error(
                            400,
                            "ValidationException",
                            "PendingWindowInDays must be between 7 and 30",
                        ));
                    }
                    let date = now() + days as f64 * 86400.0;
                    key.state = KeyState::PendingDeletion;
                    key.deletion = Some(date);
                    return Ok(ok(json!({
                        "KeyId": key.arn(),
                        "DeletionDate": date,
                        "KeyState": "PendingDeletion",
                        "PendingWindowInDays": days,
                    })));
                }
            }
            Ok(ok(json!({})))
        }
        _ => Err(error(400, "UnknownOperationException", "")),
    }
}
