//! Soak test: minutes of continuous signing and verification against the Key Vault emulator
//! while random faults are injected, to show that nothing goes wrong and memory stays flat.
//! Not part of the test suite; run it by hand:
//!
//! ```text
//! cargo run --release -p soak -- \
//!     [--minutes N (default 10)] [--seconds N] [--seed N] [--report-every SECS (default 30)]
//! ```
//!
//! Workloads, all at once on one tokio runtime, each checked by an independent verifier:
//! - `kv-rsa`, `kv-ec`: direct signatures through [`KeyVaultSigner`] over TLS (RSA-2048 with
//!   RS256/PS256/RS512, P-256 with ES256), verified with the public key the emulator reports;
//! - `cookie`: surrogate-mode session tokens over a Key Vault P-256 key, with a 10 s surrogate
//!   period so the surrogate rotates every few seconds, verified by a `SessionVerifier`;
//! - `ssh`: the ssh-agent in certificate mode (CA: a Key Vault P-256 key, 20 s certificates,
//!   renewed every 15 s) answering a raw client on its Unix socket, which lists identities,
//!   checks the certificate against the CA and verifies each signature with the certified key;
//! - `local`: an in-memory Ed25519 key, as a control.
//!
//! Every 200-600 ms (seeded) a fault is injected: into the vault's key requests (429 with and
//! without `Retry-After`, 500, 503, latency shorter and longer than the 1 s attempt timeout,
//! dropped connections, tampered signatures), as a burst of a few requests or a storm lasting
//! up to 1.5 s; into the token endpoint (access tokens live 310 s, so the SDK renews them every
//! 10 s); or into TLS (an untrusted certificate or an aborted handshake, open connections
//! closed) for up to a second. Now and then one key is disabled for 2-5 s. Retries are quick
//! (3 retries, 4 s in all). Keys are never deleted: the emulator cannot bring one back.
//!
//! The emulator runs in a child process (this program re-run with `--emulator`), so the memory
//! figures are those of the signing process alone: the emulator keeps a record of every
//! request it served, which grows by design.
//!
//! A loop pauses 20 ms after a failed operation, as a caller would, rather than spin on a key
//! that refuses.
//!
//! It prints progress every `--report-every` seconds and a final table: operations per
//! workload, errors by `ErrorKind` (`ssh` failures by what the client saw), the peak RSS
//! (`VmHWM`) after the warm-up (the first 30 s, or a third of a shorter run) and at the end.
//! After the run it clears the faults and checks that every workload succeeds again.
//!
//! It exits 1 if a signature or token that was returned as good does not verify (a wrong
//! verification: a correctness bug), if the end peak RSS exceeds the start peak by more than
//! 10 % + 8 MiB, if some workload never succeeded, or if one does not recover within 30 s.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyvault_emulator::{
    self as keyvault, Attributes, Emulator, Fault, KeySpec, RetryAfter, TlsFault,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use remote_signer::backend::azure::{KeyVaultSigner, RetryPolicy};
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::{SessionSigner, SessionVerifier};
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::surrogate::{SurrogateSigner, TrustedKey};
use remote_signer::{Algorithm, Counted, KeyType, PublicKey, RemoteSigner};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Keys the emulator holds: direct RSA, direct EC, the cookie surrogates' key, the ssh CA.
const KEYS: [(&str, KeySpec); 4] = [
    ("rsa", KeySpec::Rsa(2048)),
    ("ec", KeySpec::P256),
    ("cookie", KeySpec::P256),
    ("ca", KeySpec::P256),
];
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Access tokens live 310 s: the SDK renews them 5 minutes before expiry, so every 10 s.
const TOKEN_LIFETIME: Duration = Duration::from_secs(310);
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// How long a workload loop waits after a failed operation.
const ERROR_PAUSE: Duration = Duration::from_millis(20);
/// Allowed growth of the peak RSS from the end of warm-up to the end: 10 % plus this.
const RSS_SLACK_KIB: u64 = 8 * 1024;
const PURPOSE: &str = "soak";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Workload {
    KvRsa,
    KvEc,
    Cookie,
    Ssh,
    Local,
}

const WORKLOADS: [Workload; 5] = [
    Workload::KvRsa,
    Workload::KvEc,
    Workload::Cookie,
    Workload::Ssh,
    Workload::Local,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::KvRsa => "kv-rsa",
            Workload::KvEc => "kv-ec",
            Workload::Cookie => "cookie",
            Workload::Ssh => "ssh",
            Workload::Local => "local",
        }
    }

    /// Concurrent loops of this workload.
    fn tasks(self) -> usize {
        match self {
            Workload::Local => 1,
            _ => 2,
        }
    }
}

struct Args {
    duration: Duration,
    seed: u64,
    report_every: Duration,
}

fn main() -> ExitCode {
    let mut args = Args {
        duration: Duration::from_secs(600),
        seed: 1,
        report_every: Duration::from_secs(30),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut number = |what: &str| -> u64 {
            argv.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage(&format!("{what} needs a number")))
        };
        match arg.as_str() {
            "--emulator" => {
                run_emulator();
                return ExitCode::SUCCESS;
            }
            "--minutes" => args.duration = Duration::from_secs(60 * number("--minutes")),
            "--seconds" => args.duration = Duration::from_secs(number("--seconds")),
            "--seed" => args.seed = number("--seed"),
            "--report-every" => args.report_every = Duration::from_secs(number("--report-every")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if args.duration.is_zero() || args.report_every.is_zero() {
        usage("the duration and report interval must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if runtime.block_on(soak(args)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("soak: {problem}");
    }
    eprintln!("usage: soak [--minutes N] [--seconds N] [--seed N] [--report-every SECS]");
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

// ---------------------------------------------------------------------------------------------
// The emulator, in a child process driven by one-line commands on its stdin.

/// `--emulator`: serves the keys, prints one JSON line describing them, then answers commands
/// (one reply line each) until stdin closes.
fn run_emulator() {
    let emu = Emulator::start();
    emu.set_token_lifetime(TOKEN_LIFETIME);
    let mut keys = serde_json::Map::new();
    for (name, spec) in KEYS {
        let version = emu.create_key(name, spec);
        keys.insert(
            name.to_string(),
            json!({
                "url": emu.key_url(name, Some(&version)),
                "public_pem": emu.public_key_pem(name, &version),
            }),
        );
    }
    let hello = json!({"authority": emu.authority_host(), "ca_pem": emu.ca_pem(), "keys": keys});
    let mut out = std::io::stdout().lock();
    writeln!(out, "{hello}").expect("stdout");
    out.flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["inject", n, fault] => {
                emu.inject(parse_fault(fault), n.parse().expect("count"));
                "ok".to_string()
            }
            ["storm", fault] => {
                emu.inject_always(parse_fault(fault));
                "ok".to_string()
            }
            ["token-inject", n, fault] => {
                emu.inject_token(parse_fault(fault), n.parse().expect("count"));
                "ok".to_string()
            }
            ["tls", "untrusted"] => {
                emu.break_tls(TlsFault::UntrustedCertificate);
                "ok".to_string()
            }
            ["tls", "abort"] => {
                emu.break_tls(TlsFault::AbortHandshake);
                "ok".to_string()
            }
            ["clear"] => {
                emu.clear_faults();
                "ok".to_string()
            }
            ["enable" | "disable", name] => {
                let enabled = words[0] == "enable";
                let attributes = Attributes {
                    enabled,
                    ..Attributes::default()
                };
                emu.set_attributes(name, None, attributes);
                "ok".to_string()
            }
            ["counts"] => {
                let kinds = ["challenge", "token", "get", "sign", "throttled", "fault"];
                let counts: serde_json::Map<String, Value> = kinds
                    .iter()
                    .map(|k| (k.to_string(), json!(emu.count(k))))
                    .collect();
                Value::Object(counts).to_string()
            }
            ["memory"] => {
                let (rss, hwm) = memory_kib(Path::new("/proc/self/status"));
                json!({"rss": rss, "hwm": hwm}).to_string()
            }
            _ => format!("unknown command {line}"),
        };
        writeln!(out, "{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// `throttle`, `throttle-ms=N`, `throttle-s=N`, `status=N`, `latency-ms=N`, `drop`, `tamper`.
fn parse_fault(text: &str) -> Fault {
    let (name, value) = text.split_once('=').unwrap_or((text, "0"));
    let value: u64 = value.parse().expect("a number");
    match name {
        "throttle" => Fault::Throttle(None),
        "throttle-ms" => Fault::Throttle(Some(RetryAfter::Millis(value))),
        "throttle-s" => Fault::Throttle(Some(RetryAfter::Seconds(value))),
        "status" => Fault::Status(value as u16),
        "latency-ms" => Fault::Latency(Duration::from_millis(value)),
        "drop" => Fault::Drop,
        "tamper" => Fault::Tamper,
        other => panic!("unknown fault {other}"),
    }
}

/// The parent's handle on the emulator process. Killed on drop.
struct Control {
    child: Child,
    pipes: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    hello: Value,
}

impl Control {
    fn start() -> Control {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("--emulator")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the emulator process");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("emulator hello");
        let hello = serde_json::from_str(&line).expect("emulator hello is JSON");
        Control {
            child,
            pipes: Mutex::new((stdin, stdout)),
            hello,
        }
    }

    fn call(&self, command: &str) -> String {
        let mut pipes = self.pipes.lock().unwrap();
        writeln!(pipes.0, "{command}").expect("emulator stdin");
        pipes.0.flush().expect("emulator stdin");
        let mut reply = String::new();
        pipes.1.read_line(&mut reply).expect("emulator reply");
        reply.trim().to_string()
    }

    fn key(&self, name: &str) -> (String, PublicKey) {
        let key = &self.hello["keys"][name];
        let url = key["url"].as_str().expect("url").to_string();
        let public = PublicKey::from_pem(key["public_pem"].as_str().expect("pem")).expect("pem");
        (url, public)
    }

    async fn signer(&self, name: &str) -> Arc<KeyVaultSigner> {
        let (url, _) = self.key(name);
        let vars = [
            ("AZURE_TENANT_ID", keyvault::TENANT_ID),
            ("AZURE_CLIENT_ID", keyvault::CLIENT_ID),
            ("AZURE_CLIENT_SECRET", keyvault::CLIENT_SECRET),
            (
                "AZURE_AUTHORITY_HOST",
                self.hello["authority"].as_str().expect("authority"),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let retry = RetryPolicy::default()
            .max_retries(3)
            .initial_backoff(Duration::from_millis(20))
            .max_backoff(Duration::from_millis(200))
            .attempt_timeout(ATTEMPT_TIMEOUT)
            .max_elapsed(Duration::from_secs(4));
        let signer = KeyVaultSigner::builder(&url)
            .environment(vars)
            .add_root_certificate_pem(self.hello["ca_pem"].as_str().expect("ca"))
            .verify_challenge_resource(false)
            .retry(retry)
            .build()
            .await
            .expect("open the emulator's key");
        Arc::new(signer)
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Counting.

#[derive(Default)]
struct Counter {
    ok: AtomicU64,
    wrong: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

#[derive(Default)]
struct Stats {
    counters: BTreeMap<Workload, Counter>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            counters: WORKLOADS.iter().map(|w| (*w, Counter::default())).collect(),
        }
    }

    fn record(&self, workload: Workload, outcome: &Outcome) {
        let counter = &self.counters[&workload];
        match outcome {
            Outcome::Ok => {
                counter.ok.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed { kind, text } => {
                let mut errors = counter.errors.lock().unwrap();
                let count = errors.entry(kind.clone()).or_default();
                if *count == 0 {
                    println!("first {} error {kind}: {text}", workload.name());
                }
                *count += 1;
            }
            Outcome::Wrong(what) => {
                if counter.wrong.fetch_add(1, Ordering::Relaxed) < 5 {
                    println!("WRONG VERIFICATION in {}: {what}", workload.name());
                }
            }
        }
    }

    fn ok(&self, workload: Workload) -> u64 {
        self.counters[&workload].ok.load(Ordering::Relaxed)
    }

    fn wrong(&self, workload: Workload) -> u64 {
        self.counters[&workload].wrong.load(Ordering::Relaxed)
    }

    fn errors(&self, workload: Workload) -> BTreeMap<String, u64> {
        self.counters[&workload].errors.lock().unwrap().clone()
    }
}

/// What one operation came to.
enum Outcome {
    /// Signed (or answered) and verified.
    Ok,
    /// Failed with an error (a kind name and the error's text).
    Failed { kind: String, text: String },
    /// Returned as good but did not verify.
    Wrong(String),
}

impl Outcome {
    fn error(e: &remote_signer::Error) -> Outcome {
        Outcome::Failed {
            kind: format!("{:?}", e.kind()),
            text: e.to_string(),
        }
    }

    fn failed(kind: &str, text: impl Into<String>) -> Outcome {
        Outcome::Failed {
            kind: kind.to_string(),
            text: text.into(),
        }
    }
}

fn memory_kib(status: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(status).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Workloads.

enum Job {
    Direct {
        signer: Arc<KeyVaultSigner>,
        public: PublicKey,
        algorithms: &'static [Algorithm],
        n: u64,
    },
    Cookie {
        signer: Arc<SessionSigner>,
        verifier: Arc<SessionVerifier>,
        n: u64,
    },
    Ssh(SshClient),
    Local {
        signer: Arc<LocalSigner>,
        n: u64,
    },
}

impl Job {
    async fn once(&mut self) -> Outcome {
        match self {
            Job::Direct {
                signer,
                public,
                algorithms,
                n,
            } => {
                *n += 1;
                let algorithm = algorithms[*n as usize % algorithms.len()];
                let message = format!("soak direct message {n}");
                match signer.sign(algorithm, message.as_bytes()).await {
                    Ok(signature) => {
                        match public.verify(algorithm, message.as_bytes(), signature.as_bytes()) {
                            Ok(()) => Outcome::Ok,
                            Err(e) => Outcome::Wrong(format!(
                                "{algorithm} signature does not verify: {e}"
                            )),
                        }
                    }
                    Err(e) => Outcome::error(&e),
                }
            }
            Job::Cookie {
                signer,
                verifier,
                n,
            } => {
                *n += 1;
                // Signing a surrogate token is local work: let the other tasks run.
                tokio::task::yield_now().await;
                match signer.sign(&json!({"user": "soak", "n": *n})).await {
                    Ok(token) => match verifier.verify(&token) {
                        Ok(session) if session.get("n") == Some(&json!(*n)) => Outcome::Ok,
                        Ok(_) => Outcome::Wrong("token verified with other claims".into()),
                        Err(e) => Outcome::Wrong(format!("token does not verify: {e}")),
                    },
                    Err(e) => Outcome::error(&e),
                }
            }
            Job::Ssh(client) => client.login().await,
            Job::Local { signer, n } => {
                *n += 1;
                tokio::task::yield_now().await;
                let message = format!("soak local message {n}");
                match signer.sign(Algorithm::EdDSA, message.as_bytes()).await {
                    Ok(signature) => match signer.public_key().verify(
                        Algorithm::EdDSA,
                        message.as_bytes(),
                        signature.as_bytes(),
                    ) {
                        Ok(()) => Outcome::Ok,
                        Err(e) => Outcome::Wrong(format!("local signature does not verify: {e}")),
                    },
                    Err(e) => Outcome::error(&e),
                }
            }
        }
    }
}

/// A raw agent client that does what `ssh` does to log in: list identities, pick the
/// certificate, ask for a signature; and checks what it got.
struct SshClient {
    socket: std::path::PathBuf,
    stream: Option<tokio::net::UnixStream>,
    ca_fingerprint: ssh_key::Fingerprint,
    n: u64,
}

impl SshClient {
    async fn login(&mut self) -> Outcome {
        self.n += 1;
        let identities = match self.request(&[11]).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let blobs = match parse_identities(&identities) {
            Some(blobs) => blobs,
            None => return Outcome::Wrong("malformed identities answer".into()),
        };
        let Some((blob, certificate)) = blobs.into_iter().find_map(|b| {
            let certificate = ssh_key::Certificate::from_bytes(&b).ok()?;
            Some((b, certificate))
        }) else {
            return Outcome::failed("NoCertificateListed", "the agent listed no certificate");
        };
        // The CA's signature, checked at a moment inside the window; the window separately, so
        // that a certificate expiring between listing and checking is not a false alarm.
        if let Err(e) = certificate.validate_at(certificate.valid_after(), [&self.ca_fingerprint]) {
            return Outcome::Wrong(format!("listed certificate does not validate: {e}"));
        }
        if unix_now() > certificate.valid_before() + 1 {
            return Outcome::Wrong("listed certificate has expired".into());
        }
        let Some(key) = certificate.public_key().ed25519() else {
            return Outcome::Wrong("certified key is not Ed25519".into());
        };
        // An SSHSIG blob (what `ssh-keygen -Y sign` signs): the agent signs only those and
        // SSH logins.
        let data = {
            use sha2::Digest as _;
            let hash = sha2::Sha512::digest(format!("soak ssh session {}", self.n));
            let mut data = b"SSHSIG".to_vec();
            for field in [&b"soak"[..], b"", b"sha512", &hash[..]] {
                data.extend_from_slice(&(field.len() as u32).to_be_bytes());
                data.extend_from_slice(field);
            }
            data
        };
        let mut request = vec![13u8];
        for field in [blob.as_slice(), data.as_slice()] {
            request.extend_from_slice(&(field.len() as u32).to_be_bytes());
            request.extend_from_slice(field);
        }
        request.extend_from_slice(&0u32.to_be_bytes());
        let answer = match self.request(&request).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        match answer.first() {
            Some(14) if answer.len() > 5 => {}
            Some(5) => return Outcome::failed("AgentFailure", "the agent refused to sign"),
            _ => return Outcome::Wrong("malformed sign answer".into()),
        }
        let verified = ssh_key::Signature::try_from(&answer[5..])
            .ok()
            .filter(|s| s.algorithm() == ssh_key::Algorithm::Ed25519)
            .and_then(|s| ed25519_dalek::Signature::from_slice(s.as_bytes()).ok())
            .and_then(|s| {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&key.0).ok()?;
                key.verify_strict(&data, &s).ok()
            });
        match verified {
            Some(()) => Outcome::Ok,
            None => Outcome::Wrong("agent signature does not verify".into()),
        }
    }

    async fn request(&mut self, body: &[u8]) -> Result<Vec<u8>, Outcome> {
        let io = |e: std::io::Error| Outcome::failed("Io", format!("agent socket: {e}"));
        if self.stream.is_none() {
            self.stream = Some(
                tokio::net::UnixStream::connect(&self.socket)
                    .await
                    .map_err(io)?,
            );
        }
        let stream = self.stream.as_mut().expect("connected");
        let result = async {
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(body);
            stream.write_all(&frame).await?;
            let mut prefix = [0u8; 4];
            stream.read_exact(&mut prefix).await?;
            let mut answer = vec![0u8; u32::from_be_bytes(prefix) as usize];
            stream.read_exact(&mut answer).await?;
            Ok(answer)
        }
        .await;
        if result.is_err() {
            self.stream = None;
        }
        result.map_err(io)
    }
}

/// The key blobs of an `IDENTITIES_ANSWER`.
fn parse_identities(answer: &[u8]) -> Option<Vec<Vec<u8>>> {
    fn string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
        let value = input.get(4..4 + len)?;
        *input = &input[4 + len..];
        Some(value)
    }
    let mut rest = answer.strip_prefix(&[12])?;
    let count = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut blobs = Vec::new();
    for _ in 0..count {
        blobs.push(string(&mut rest)?.to_vec());
        string(&mut rest)?;
    }
    rest.is_empty().then_some(blobs)
}

// ---------------------------------------------------------------------------------------------
// Faults.

/// Injects a random fault every 200-600 ms until `stop`; returns what it injected.
fn inject_faults(control: &Control, seed: u64, stop: &AtomicBool) -> BTreeMap<String, u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n;
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let long = ATTEMPT_TIMEOUT.as_millis() as u64 + 500;
    let sleep = |ms: u64| {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        sleep(200 + below(400));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Each fault with its label in the report (the random amounts left out).
        let (label, fault) = match below(9) {
            0 => ("429", "throttle".to_string()),
            1 => (
                "429 retry-after-ms",
                format!("throttle-ms={}", 20 + below(300)),
            ),
            2 => ("429 retry-after 1 s", "throttle-s=1".to_string()),
            3 => ("500", "status=500".to_string()),
            4 => ("503", "status=503".to_string()),
            5 => (
                "latency < timeout",
                format!("latency-ms={}", 20 + below(300)),
            ),
            6 => ("latency > timeout", format!("latency-ms={long}")),
            7 => ("dropped connection", "drop".to_string()),
            _ => ("tampered reply", "tamper".to_string()),
        };
        let mut count = |what: String| *injected.entry(what).or_default() += 1;
        match below(20) {
            0..=11 => {
                let times = 1 + below(6);
                control.call(&format!("inject {times} {fault}"));
                count(format!("key requests: burst of {label}"));
            }
            12..=14 => {
                control.call(&format!("storm {fault}"));
                sleep(300 + below(1200));
                control.call("clear");
                count(format!("key requests: storm of {label}"));
            }
            15..=16 => {
                // Tokens live 10 s here, so the token endpoint is called all the time.
                let times = 1 + below(4);
                control.call(&format!("token-inject {times} {fault}"));
                count(format!("token endpoint: burst of {label}"));
            }
            17 => {
                let (what, tls) = if below(2) == 0 {
                    ("untrusted certificate", "untrusted")
                } else {
                    ("aborted handshake", "abort")
                };
                control.call(&format!("tls {tls}"));
                sleep(200 + below(800));
                control.call("clear");
                count(format!("TLS: {what}"));
            }
            _ => {
                let (name, _) = KEYS[below(KEYS.len() as u64) as usize];
                control.call(&format!("disable {name}"));
                sleep(2000 + below(3000));
                control.call(&format!("enable {name}"));
                count(format!("key {name} disabled for 2-5 s"));
            }
        }
    }
    injected
}

// ---------------------------------------------------------------------------------------------
// The run.

async fn soak(args: Args) -> bool {
    let control = Arc::new(Control::start());
    let (_, rsa_public) = control.key("rsa");
    let (_, ec_public) = control.key("ec");
    let (_, cookie_public) = control.key("cookie");
    let (_, ca_public) = control.key("ca");
    let rsa = control.signer("rsa").await;
    let ec = control.signer("ec").await;
    let cookie_managed = Arc::new(Counted::new(control.signer("cookie").await));
    let ca = Arc::new(Counted::new(control.signer("ca").await));

    let surrogate = SurrogateSigner::builder(cookie_managed.clone(), PURPOSE)
        .period(Duration::from_secs(10))
        .refresh_margin(Duration::from_secs(4))
        .jitter(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(100), Duration::from_secs(2))
        // Tokens live 60 s: certificates are past use 60 s after their window (plus leeway),
        // so the verifiers' caches stay small instead of filling over the run.
        .max_token_lifetime(Duration::from_secs(60))
        .build()
        .expect("surrogate signer");
    let session_signer = Arc::new(
        SessionSigner::builder(surrogate, PURPOSE)
            .ttl(Duration::from_secs(60))
            .build()
            .expect("session signer"),
    );
    let verifier = Arc::new(SessionVerifier::new(
        [TrustedKey::new(cookie_public)],
        PURPOSE,
    ));

    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("agent.sock");
    let agent = Agent::builder()
        .certificate_authority(
            ca.clone(),
            CertificateOptions::new([PURPOSE]).validity(Duration::from_secs(20)),
        )
        .build()
        .expect("agent");
    agent.renew_certificates().await.expect("first certificate");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind the agent socket");
    let (shutdown_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(async move {
        agent
            .serve_until(listener, async {
                let _ = agent_stopped.await;
            })
            .await
    });
    let ca_fingerprint = ca_public
        .to_ssh_key_data()
        .expect("CA in SSH form")
        .fingerprint(ssh_key::HashAlg::Sha256);
    let local = Arc::new(LocalSigner::generate(KeyType::Ed25519).expect("local key"));

    let make_job = |workload: Workload| match workload {
        Workload::KvRsa => Job::Direct {
            signer: rsa.clone(),
            public: rsa_public.clone(),
            algorithms: &[Algorithm::RS256, Algorithm::PS256, Algorithm::RS512],
            n: 0,
        },
        Workload::KvEc => Job::Direct {
            signer: ec.clone(),
            public: ec_public.clone(),
            algorithms: &[Algorithm::ES256],
            n: 0,
        },
        Workload::Cookie => Job::Cookie {
            signer: session_signer.clone(),
            verifier: verifier.clone(),
            n: 0,
        },
        Workload::Ssh => Job::Ssh(SshClient {
            socket: socket.clone(),
            stream: None,
            ca_fingerprint,
            n: 0,
        }),
        Workload::Local => Job::Local {
            signer: local.clone(),
            n: 0,
        },
    };

    println!(
        "soak: {} s, seed {}, workloads {}",
        args.duration.as_secs(),
        args.seed,
        WORKLOADS
            .iter()
            .map(|w| format!("{} x{}", w.name(), w.tasks()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for workload in WORKLOADS {
        for _ in 0..workload.tasks() {
            let mut job = make_job(workload);
            let stats = stats.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = job.once().await;
                    stats.record(workload, &outcome);
                    if matches!(outcome, Outcome::Failed { .. }) {
                        // As a caller would: not hammer a key that just refused.
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }));
        }
    }
    let injector = {
        let control = control.clone();
        let stop = stop.clone();
        let seed = args.seed;
        std::thread::spawn(move || inject_faults(&control, seed, &stop))
    };

    let self_status = Path::new("/proc/self/status");
    let warm_up = Duration::from_secs(30).min(args.duration / 3);
    let mut start_memory = None;
    let mut next_report = args.report_every;
    let deadline = started + args.duration;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250).min(deadline - Instant::now())).await;
        let elapsed = started.elapsed();
        if start_memory.is_none() && elapsed >= warm_up {
            let (rss, hwm) = memory_kib(self_status);
            println!(
                "[{:>4}s] warm-up done: RSS {}, peak RSS {}",
                elapsed.as_secs(),
                mib(rss),
                mib(hwm)
            );
            start_memory = Some((rss, hwm));
        }
        if elapsed >= next_report {
            next_report += args.report_every;
            let (rss, hwm) = memory_kib(self_status);
            let progress: Vec<String> = WORKLOADS
                .iter()
                .map(|w| {
                    let errors: u64 = stats.errors(*w).values().sum();
                    format!("{} {}/{}", w.name(), stats.ok(*w), errors)
                })
                .collect();
            println!(
                "[{:>4}s] ok/errors: {} | RSS {}, peak {}",
                elapsed.as_secs(),
                progress.join(", "),
                mib(rss),
                mib(hwm)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("workload task");
    }
    let injected = injector.join().expect("fault injector");
    let ran_for = started.elapsed();
    let end_memory = memory_kib(self_status);
    let start_memory = start_memory.unwrap_or(end_memory);

    // Recovery: no faults, every key enabled; each workload must succeed again.
    control.call("clear");
    for (name, _) in KEYS {
        control.call(&format!("enable {name}"));
    }
    let mut recovered = BTreeMap::new();
    for workload in WORKLOADS {
        let mut job = make_job(workload);
        let begun = Instant::now();
        let mut last = String::new();
        let took = loop {
            match job.once().await {
                Outcome::Ok => break Some(begun.elapsed()),
                Outcome::Failed { kind, .. } => last = kind,
                Outcome::Wrong(what) => {
                    stats.record(workload, &Outcome::Wrong(what));
                }
            }
            if begun.elapsed() > RECOVERY_LIMIT {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        recovered.insert(workload, (took, last));
    }
    let _ = shutdown_agent.send(());
    let _ = agent_task.await;

    // The report.
    let emulator_counts: Value = serde_json::from_str(&control.call("counts")).unwrap_or_default();
    let emulator_memory: Value = serde_json::from_str(&control.call("memory")).unwrap_or_default();
    println!();
    println!(
        "soak finished after {:.0} s (seed {})",
        ran_for.as_secs_f64(),
        args.seed
    );
    println!(
        "{:<8} {:>10} {:>8} {:>6}  {:<12} errors by kind",
        "workload", "ok", "errors", "wrong", "recovered"
    );
    let mut passed = true;
    let mut problems = Vec::new();
    for workload in WORKLOADS {
        let errors = stats.errors(workload);
        let total: u64 = errors.values().sum();
        let kinds: Vec<String> = errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let (took, last) = &recovered[&workload];
        let recovery = match took {
            Some(t) => format!("in {} ms", t.as_millis()),
            None => format!("NO ({last})"),
        };
        println!(
            "{:<8} {:>10} {:>8} {:>6}  {:<12} {}",
            workload.name(),
            stats.ok(workload),
            total,
            stats.wrong(workload),
            recovery,
            if kinds.is_empty() {
                "-".to_string()
            } else {
                kinds.join(", ")
            }
        );
        if stats.wrong(workload) > 0 {
            problems.push(format!("{}: wrong verifications", workload.name()));
        }
        if stats.ok(workload) == 0 {
            problems.push(format!("{}: no operation succeeded", workload.name()));
        }
        if took.is_none() {
            problems.push(format!("{}: did not recover", workload.name()));
        }
    }
    println!(
        "managed-key signatures: cookie surrogates {} (and {} failed attempts), ssh certificates \
         {} (and {} failed attempts)",
        cookie_managed.signatures(),
        cookie_managed.failures(),
        ca.signatures(),
        ca.failures()
    );
    println!("faults injected:");
    for (what, times) in &injected {
        println!("  {times:>5}  {what}");
    }
    println!("emulator served: {emulator_counts}");
    println!(
        "memory: peak RSS after warm-up {} (RSS {}), at end {} (RSS {}); emulator process peak {}",
        mib(start_memory.1),
        mib(start_memory.0),
        mib(end_memory.1),
        mib(end_memory.0),
        mib(emulator_memory["hwm"].as_u64().unwrap_or(0)),
    );
    let allowed = start_memory.1 + start_memory.1 / 10 + RSS_SLACK_KIB;
    if end_memory.1 > allowed {
        problems.push(format!(
            "peak RSS grew from {} to {} (allowed up to {})",
            mib(start_memory.1),
            mib(end_memory.1),
            mib(allowed)
        ));
    }
    for problem in &problems {
        println!("FAIL: {problem}");
        passed = false;
    }
    println!("{}", if passed { "PASS" } else { "FAIL" });
    passed
}
