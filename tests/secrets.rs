//! Nothing secret leaks, key files are read once, and what the crate writes is private.
//!
//! - One capturing subscriber at TRACE takes every `tracing` event (the Azure SDK, reqwest,
//!   hyper) and every `log` record (the agent, rustls) of this test binary. A full pass of the
//!   crate then runs in process: local keys of every type and container (plain and encrypted),
//!   Key Vault keys on the emulator with faults (throttling, 500/503, dropped connections,
//!   tampered replies, timeouts, a disabled key, a denied key, a refused client secret),
//!   surrogate and direct session tokens with forged and tampered ones, Snowflake JWTs, and the
//!   ssh-agent with good and malformed requests, a failing managed key and a failing CA. Every
//!   error's `Display` and `{:?}`, the `Debug` of every signer, builder and token, and the whole
//!   log are searched for every secret the test knows: the private keys' PEM lines and raw
//!   scalars (hex, base64, base64url), the passphrase, the client secrets, every access token
//!   the emulator issued, the session tokens' and JWTs' signatures, and the SHA-2 digests of
//!   every message signed. A self-check plants a secret and sees the search find it.
//! - The CLI, run with `RUST_LOG=trace` on failing and succeeding commands, is searched the
//!   same way (stderr, and stdout where it is not the requested output).
//! - Key files are opened once (traced with `strace`); a FIFO is refused without hanging.
//! - Under umask 000, `generate` writes a 0600 file and the agent's socket is 0600 in a 0700
//!   directory.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use remote_signer::backend::azure::{KeyVaultSigner, RetryPolicy};
use remote_signer::backend::local::{LocalKeyOptions, LocalSigner};
use remote_signer::cookie::{SessionSigner, SessionVerifier, SigningMode};
use remote_signer::snowflake::{KeyPairAuth, KeySlot, SqlApiTokens, alter_user_statement};
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::surrogate::{SurrogateSigner, TrustedKey};
use remote_signer::{Algorithm, ErrorKind, KeyRef, KeyType, OpenOptions, RemoteSigner};
use sha2::Digest;
use support::keyvault::{
    self, Attributes, Deny, Emulator, EmulatorSigners as _, Fault, RetryAfter,
};

const PASSPHRASE: &str = "correct horse battery staple 7731";
const WRONG_CLIENT_SECRET: &str = "not-the-registered-secret~0x5eed";
const CLI: &str = env!("CARGO_BIN_EXE_remote-signer");

// ---------------------------------------------------------------------------------------------
// Capturing every log line of this process.

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the one subscriber (idempotent): `tracing` events at every level, and `log`
/// records through the bridge.
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogSink)
            .try_init()
            .expect("the only global subscriber");
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Secrets and the search for them.

/// Everything secret the test knows, as text fragments to search for.
#[derive(Default)]
struct Secrets {
    fragments: BTreeSet<(String, String)>,
    /// Public forms of the keys: a private key's encoding contains its public key and common
    /// headers, so fragments found in these are not searched for.
    public: Vec<String>,
}

impl Secrets {
    /// A secret text: itself if short, else overlapping 20-character windows (at least 16
    /// characters, so that no fragment matches by chance).
    fn text(&mut self, label: &str, value: &str) {
        assert!(value.len() >= 16, "{label}: too short to search for");
        let chars: Vec<char> = value.chars().collect();
        if chars.len() <= 24 {
            self.fragments
                .insert((label.to_string(), value.to_string()));
            return;
        }
        let mut start = 0;
        loop {
            let end = (start + 20).min(chars.len());
            let fragment: String = chars[start..end].iter().collect();
            self.fragments.insert((label.to_string(), fragment));
            if end == chars.len() {
                break;
            }
            start += 10;
        }
    }

    /// Secret bytes in hex (both cases), base64 and base64url.
    fn bytes(&mut self, label: &str, bytes: &[u8]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.text(label, &hex);
        self.text(label, &hex.to_uppercase());
        self.text(label, &STANDARD_NO_PAD.encode(bytes));
        self.text(label, &URL_SAFE_NO_PAD.encode(bytes));
    }

    /// A private key in PEM: its body lines, its DER, and its raw private numbers.
    fn private_pem(&mut self, label: &str, pem: &str) {
        let body: Vec<&str> = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.contains(':') && l.len() >= 16)
            .collect();
        for line in &body {
            self.text(label, line);
        }
        let der = STANDARD.decode(body.concat()).expect("PEM body is base64");
        self.bytes(label, &der);
    }

    /// The digests a signer could send or log for `message`.
    fn digests(&mut self, label: &str, message: &[u8]) {
        self.bytes(label, &sha2::Sha256::digest(message));
        self.bytes(label, &sha2::Sha384::digest(message));
        self.bytes(label, &sha2::Sha512::digest(message));
    }

    /// A JWS (session token, JWT): its signature, and the digests of its signing input.
    fn jws(&mut self, label: &str, token: &str) {
        let (input, signature) = token.rsplit_once('.').expect("a JWS");
        self.text(label, signature);
        self.digests(label, input.as_bytes());
    }

    /// The public forms of a key, whose text is not secret.
    fn public_key(&mut self, public: &remote_signer::PublicKey) {
        let der = public.to_spki_der();
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        self.public.extend([
            public.to_pem(),
            format!("{public:?}"),
            serde_json::to_string(&public.to_jwk()).unwrap(),
            public.to_openssh("").unwrap_or_default(),
            hex.to_uppercase(),
            hex,
            STANDARD_NO_PAD.encode(&der),
            URL_SAFE_NO_PAD.encode(&der),
        ]);
    }

    /// The fragments to search for, indexed by their first 8 bytes.
    fn index(&self) -> Index<'_> {
        let mut by_prefix: HashMap<&[u8], Vec<&(String, String)>> = HashMap::new();
        for entry in &self.fragments {
            if self.public.iter().any(|p| p.contains(entry.1.as_str())) {
                continue;
            }
            by_prefix
                .entry(&entry.1.as_bytes()[..8])
                .or_default()
                .push(entry);
        }
        Index { by_prefix }
    }

    /// Which secrets `text` contains, by label.
    fn found_in(&self, text: &str) -> BTreeSet<String> {
        self.index().found_in(text)
    }
}

struct Index<'a> {
    by_prefix: HashMap<&'a [u8], Vec<&'a (String, String)>>,
}

impl Index<'_> {
    fn len(&self) -> usize {
        self.by_prefix.values().map(Vec::len).sum()
    }

    fn found_in(&self, text: &str) -> BTreeSet<String> {
        let bytes = text.as_bytes();
        let mut found = BTreeSet::new();
        for start in 0..bytes.len().saturating_sub(7) {
            if let Some(candidates) = self.by_prefix.get(&bytes[start..start + 8]) {
                for (label, fragment) in candidates {
                    if bytes[start..].starts_with(fragment.as_bytes()) {
                        found.insert(label.clone());
                    }
                }
            }
        }
        found
    }
}

/// The raw private numbers of a PKCS#8 key, found independently of the crate.
fn private_numbers(pem: &str) -> Vec<Vec<u8>> {
    use pkcs8::DecodePrivateKey;
    if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        return vec![k.to_bytes().to_vec()];
    }
    if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
        return vec![k.to_bytes().to_vec()];
    }
    if let Ok(k) = p384::SecretKey::from_pkcs8_pem(pem) {
        return vec![k.to_bytes().to_vec()];
    }
    use rsa::traits::PrivateKeyParts;
    let k = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("a PKCS#8 key");
    let mut numbers = vec![k.d().to_bytes_be()];
    numbers.extend(k.primes().iter().map(|p| p.to_bytes_be()));
    numbers
}

/// Texts that must hold no secret: what each is, and the text.
#[derive(Default)]
struct Texts(Vec<(String, String)>);

impl Texts {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    /// The `Debug` forms of a value.
    fn debug(&mut self, what: &str, value: &impl std::fmt::Debug) {
        self.add(what, format!("{value:?}"));
        self.add(what, format!("{value:#?}"));
    }

    /// An error's `Display`, `Debug` and source chain, or the `Debug` of a success.
    fn result<T: std::fmt::Debug>(&mut self, what: &str, result: &remote_signer::Result<T>) {
        match result {
            Ok(value) => self.debug(what, value),
            Err(e) => {
                let mut text = format!("{e} | {e:?} | {e:#?}");
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    text.push_str(&format!(" | {cause} | {cause:?}"));
                    source = cause.source();
                }
                self.add(what, text);
            }
        }
    }

    /// Every text that holds a secret, with the secrets' labels.
    fn leaks(&self, secrets: &Secrets) -> Vec<String> {
        let index = secrets.index();
        assert!(index.len() > 100, "too few secrets to mean much");
        self.0
            .iter()
            .filter_map(|(what, text)| {
                let found = index.found_in(text);
                (!found.is_empty()).then(|| format!("{what} contains {found:?}: {text}"))
            })
            .collect()
    }

    /// Fails listing every text that holds a secret.
    fn assert_clean(&self, secrets: &Secrets) {
        let leaks = self.leaks(secrets);
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// Private key files of every type and container, mode 0600, with their secrets.
struct KeyFiles {
    dir: tempfile::TempDir,
    /// Which fixed RSA key (`support::keys`) an RSA key file holds.
    rsa: usize,
}

impl KeyFiles {
    fn new() -> KeyFiles {
        KeyFiles::with_rsa_key(0)
    }

    /// Key files whose RSA key is fixed key `rsa`, for a second set whose RSA key differs.
    fn with_rsa_key(rsa: usize) -> KeyFiles {
        KeyFiles {
            dir: tempfile::tempdir().unwrap(),
            rsa,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new PKCS#8 key `name` (RSA: the fixed one, see `support::keys::any`); records its
    /// secrets.
    fn generate(&self, name: &str, key_type: KeyType, secrets: &mut Secrets) -> PathBuf {
        let path = self.path(name);
        support::keys::any_file(key_type, self.rsa, &path);
        let pem = std::fs::read_to_string(&path).unwrap();
        secrets.private_pem(name, &pem);
        secrets.public_key(LocalSigner::open(&path).unwrap().public_key());
        for number in private_numbers(&pem) {
            secrets.bytes(&format!("{name} private number"), &number);
        }
        path
    }

    /// `openssl <args> -in key -out name`, mode 0600; records the new file's PEM lines.
    fn convert(&self, key: &Path, name: &str, args: &[&str], secrets: &mut Secrets) -> PathBuf {
        let out = self.path(name);
        let run = Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(key)
            .arg("-out")
            .arg(&out)
            .output()
            .expect("run openssl");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "openssl {args:?}: {stderr}");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
        secrets.private_pem(name, &std::fs::read_to_string(&out).unwrap());
        out
    }

    fn write(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

fn encrypt_args() -> Vec<String> {
    ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("pass:{PASSPHRASE}")])
        .collect()
}

/// The standard key files: PKCS#8 of each type, PKCS#1 RSA, SEC1 P-256, encrypted RSA and P-256.
fn standard_keys(keys: &KeyFiles, secrets: &mut Secrets) -> Vec<(&'static str, PathBuf)> {
    let rsa = keys.generate("rsa.pem", KeyType::Rsa, secrets);
    let p256 = keys.generate("p256.pem", KeyType::P256, secrets);
    let p384 = keys.generate("p384.pem", KeyType::P384, secrets);
    let ed = keys.generate("ed25519.pem", KeyType::Ed25519, secrets);
    let encrypt = encrypt_args();
    let encrypt: Vec<&str> = encrypt.iter().map(String::as_str).collect();
    let pkcs1 = keys.convert(&rsa, "rsa-pkcs1.pem", &["pkey", "-traditional"], secrets);
    let sec1 = keys.convert(&p256, "p256-sec1.pem", &["ec"], secrets);
    let rsa_enc = keys.convert(&rsa, "rsa-enc.p8", &encrypt, secrets);
    let p256_enc = keys.convert(&p256, "p256-enc.p8", &encrypt, secrets);
    secrets.text("passphrase", PASSPHRASE);
    vec![
        ("rsa", rsa),
        ("p256", p256),
        ("p384", p384),
        ("ed25519", ed),
        ("rsa-pkcs1", pkcs1),
        ("p256-sec1", sec1),
        ("rsa-enc", rsa_enc),
        ("p256-enc", p256_enc),
    ]
}

// ---------------------------------------------------------------------------------------------
// The in-process pass.

/// Signs `message` with every algorithm the signer supports, verifies, and records the digests.
async fn sign_all(
    what: &str,
    signer: &dyn RemoteSigner,
    message: &[u8],
    texts: &mut Texts,
    secrets: &mut Secrets,
) {
    secrets.digests(&format!("digest of a message signed by {what}"), message);
    for algorithm in Algorithm::ALL {
        let result = signer.sign(algorithm, message).await;
        if let Ok(signature) = &result {
            signer
                .public_key()
                .verify(algorithm, message, signature.as_bytes())
                .expect("a good signature");
        }
        texts.result(&format!("{what} {algorithm}"), &result);
    }
}

async fn local_pass(
    texts: &mut Texts,
    secrets: &mut Secrets,
) -> Vec<(&'static str, Arc<LocalSigner>)> {
    let keys = KeyFiles::new();
    let files = standard_keys(&keys, secrets);
    let with_passphrase = LocalKeyOptions::new().passphrase(PASSPHRASE);
    texts.debug("options with a passphrase", &with_passphrase);
    let mut signers = Vec::new();
    for (name, path) in &files {
        let plain = LocalSigner::open(path);
        texts.result(&format!("open {name} without a passphrase"), &plain);
        let opened = with_passphrase.open(path);
        texts.result(&format!("open {name} with the passphrase"), &opened);
        let signer = Arc::new(opened.expect("every standard key opens with the passphrase"));
        let shared: Arc<dyn RemoteSigner> = signer.clone();
        texts.debug(&format!("{name} as dyn RemoteSigner"), &shared);
        texts.debug(&format!("{name} public key"), signer.public_key());
        sign_all(
            name,
            &*signer,
            format!("local message for {name}").as_bytes(),
            texts,
            secrets,
        )
        .await;
        signers.push((*name, signer));
    }

    // Refusals: wrong passphrase, readable file, broken and truncated files, wrong kinds.
    let wrong = LocalKeyOptions::new().passphrase("a wrong passphrase, long enough");
    for (name, path) in &files {
        texts.result(
            &format!("open {name} with a wrong passphrase"),
            &wrong.open(path),
        );
    }
    let rsa_pem = std::fs::read_to_string(keys.path("rsa.pem")).unwrap();
    let readable = keys.write("readable.pem", rsa_pem.as_bytes(), 0o644);
    texts.result("open a readable key file", &LocalSigner::open(&readable));
    let mut lines: Vec<&str> = rsa_pem.lines().collect();
    lines[3] = "!!!! not base64 !!!!";
    let broken = keys.write("broken.pem", lines.join("\n").as_bytes(), 0o600);
    texts.result("open a broken key file", &LocalSigner::open(&broken));
    let truncated = keys.write(
        "truncated.pem",
        &rsa_pem.as_bytes()[..rsa_pem.len() / 2],
        0o600,
    );
    texts.result("open a truncated key file", &LocalSigner::open(&truncated));
    let der = STANDARD
        .decode(
            rsa_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let mut bad_der = der.clone();
    bad_der[40] ^= 0xff;
    texts.result(
        "parse corrupted DER",
        &LocalSigner::from_bytes(&bad_der, None),
    );
    texts.result(
        "parse DER with a passphrase",
        &LocalSigner::from_bytes(&der, Some(b"unused passphrase")),
    );
    let enc_pem = std::fs::read(keys.path("rsa-enc.p8")).unwrap();
    texts.result(
        "parse encrypted PEM without passphrase",
        &LocalSigner::from_bytes(&enc_pem, None),
    );
    let key_ref: remote_signer::Result<KeyRef> =
        format!("file://{}", keys.path("p256-enc.p8").display()).parse();
    texts.result("key ref", &key_ref);
    let options = OpenOptions::new().local(LocalKeyOptions::new().passphrase(PASSPHRASE));
    texts.debug("open options", &options);
    let opened = key_ref.unwrap().open(&options).await;
    texts.result("open a key ref", &opened);
    signers
}

/// Key Vault keys on the emulator, faults and refusals; returns the emulator (its tokens are
/// secrets) and signers for the later passes.
async fn keyvault_pass(
    texts: &mut Texts,
    secrets: &mut Secrets,
) -> (
    Emulator,
    Arc<KeyVaultSigner>,
    Arc<KeyVaultSigner>,
    Arc<KeyVaultSigner>,
) {
    let emu = Emulator::start();
    let keys = KeyFiles::with_rsa_key(1);
    let rsa = keys.generate("vault-rsa.pem", KeyType::Rsa, secrets);
    let ec = keys.generate("vault-p256.pem", KeyType::P256, secrets);
    let ec384 = keys.generate("vault-p384.pem", KeyType::P384, secrets);
    emu.import_pem("rsa", &std::fs::read_to_string(&rsa).unwrap());
    emu.import_pem("ec", &std::fs::read_to_string(&ec).unwrap());
    emu.import_pem("ca", &std::fs::read_to_string(&ec384).unwrap());
    emu.import_pem("denied", &std::fs::read_to_string(&ec).unwrap());
    emu.deny("denied", Deny::Rbac);
    secrets.text("client secret", keyvault::CLIENT_SECRET);
    secrets.text("wrong client secret", WRONG_CLIENT_SECRET);

    let builder = emu.signer_builder(&emu.key_url("rsa", None));
    texts.debug("key vault builder", &builder);
    let rsa = Arc::new(builder.build().await.expect("open the vault's RSA key"));
    let ec = Arc::new(
        emu.signer_builder(&emu.key_url("ec", None))
            .build()
            .await
            .expect("open the vault's EC key"),
    );
    let ca = Arc::new(
        emu.signer_builder(&emu.key_url("ca", None))
            .build()
            .await
            .expect("open the vault's CA key"),
    );
    texts.debug("key vault signer", &rsa);
    texts.debug("key vault stats", &rsa.stats());
    sign_all("vault rsa", &*rsa, b"vault message, rsa", texts, secrets).await;
    sign_all("vault ec", &*ec, b"vault message, ec", texts, secrets).await;

    // Faults the retries absorb, then faults that win.
    let message = b"vault message under faults";
    secrets.digests("digest of a message signed under faults", message);
    for (what, fault, times) in [
        ("throttled", Fault::Throttle(None), 2),
        (
            "throttled with retry-after",
            Fault::Throttle(Some(RetryAfter::Millis(20))),
            2,
        ),
        ("500", Fault::Status(500), 1),
        ("503", Fault::Status(503), 1),
        ("dropped", Fault::Drop, 1),
        ("tampered", Fault::Tamper, 1),
        ("throttled without end", Fault::Throttle(None), 10),
        ("500 without end", Fault::Status(500), 10),
        ("dropped without end", Fault::Drop, 10),
        ("tampered without end", Fault::Tamper, 10),
    ] {
        emu.inject(fault, times);
        for (name, signer) in [("rsa", &rsa), ("ec", &ec)] {
            let result = signer.sign(signer.default_algorithm(), message).await;
            texts.result(&format!("vault {name} sign, {what}"), &result);
        }
        emu.clear_faults();
    }
    let impatient = emu
        .signer_builder(&emu.key_url("ec", None))
        .retry(RetryPolicy::no_retries(Duration::from_millis(300)))
        .build()
        .await
        .expect("open the vault's EC key");
    emu.inject(Fault::Latency(Duration::from_secs(1)), 1);
    let result = impatient.sign(Algorithm::ES256, message).await;
    assert_eq!(result.as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    texts.result("vault sign, too slow", &result);

    emu.set_attributes(
        "ec",
        None,
        Attributes {
            enabled: false,
            ..Attributes::default()
        },
    );
    let result = ec.sign(Algorithm::ES256, message).await;
    assert_eq!(result.as_ref().unwrap_err().kind(), ErrorKind::KeyDisabled);
    texts.result("vault sign, disabled key", &result);
    emu.set_attributes("ec", None, Attributes::default());

    let denied = emu
        .signer_builder(&emu.key_url("denied", None))
        .build()
        .await;
    texts.result("vault open, denied key", &denied);
    let missing = emu
        .signer_builder(&emu.key_url("missing", None))
        .build()
        .await;
    texts.result("vault open, missing key", &missing);
    let wrong_secret = KeyVaultSigner::builder(&emu.key_url("rsa", None))
        .environment(emu.env().into_iter().map(|(k, v)| {
            let v = if k == "AZURE_CLIENT_SECRET" {
                WRONG_CLIENT_SECRET.to_string()
            } else {
                v
            };
            (k, v)
        }))
        .add_root_certificate_pem(emu.ca_pem())
        .verify_challenge_resource(false)
        .retry(RetryPolicy::no_retries(Duration::from_secs(5)));
    texts.debug("key vault builder with a wrong secret", &wrong_secret);
    let wrong_secret = wrong_secret.build().await;
    assert!(
        wrong_secret.is_err(),
        "the token endpoint refuses a wrong secret"
    );
    texts.result("vault open, wrong client secret", &wrong_secret);
    let untrusted = KeyVaultSigner::builder(&emu.key_url("rsa", None))
        .environment(emu.env())
        .verify_challenge_resource(false)
        .retry(RetryPolicy::no_retries(Duration::from_secs(5)))
        .build()
        .await;
    texts.result("vault open, untrusted certificate", &untrusted);
    (emu, rsa, ec, ca)
}

async fn cookie_pass(
    rsa: Arc<dyn RemoteSigner>,
    ec: Arc<dyn RemoteSigner>,
    failing: Arc<dyn RemoteSigner>,
    texts: &mut Texts,
    secrets: &mut Secrets,
) {
    let claims = serde_json::json!({"user": "alice", "role": "admin"});
    let surrogate = SessionSigner::new(ec.clone(), "web").unwrap();
    let direct = SessionSigner::builder(rsa.clone(), "web")
        .mode(SigningMode::Direct)
        .build()
        .unwrap();
    texts.debug("surrogate session signer", &surrogate);
    texts.debug("direct session signer", &direct);
    let verifier = SessionVerifier::new(
        [
            TrustedKey::new(ec.public_key().clone()),
            TrustedKey::new(rsa.public_key().clone()),
        ],
        "web",
    );
    texts.debug("session verifier", &verifier);
    let other_purpose = SessionVerifier::new([TrustedKey::new(ec.public_key().clone())], "api");
    for (mode, signer) in [("surrogate", &surrogate), ("direct", &direct)] {
        let token = signer.sign(&claims).await.expect("sign a session token");
        secrets.jws(&format!("{mode} session token"), &token);
        texts.result(&format!("{mode} session"), &verifier.verify(&token));
        texts.result(
            &format!("{mode} token, other purpose"),
            &other_purpose.verify(&token),
        );
        let late = SystemTime::now() + Duration::from_secs(30 * 24 * 3600);
        texts.result(
            &format!("{mode} token, expired"),
            &verifier.verify_at(late, &token),
        );
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        texts.result(
            &format!("{mode} token, flipped signature"),
            &verifier.verify(&flipped),
        );
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"user":"mallory","role":"admin"}"#);
        let payload = parts.len() - 2;
        parts[payload] = forged;
        texts.result(
            &format!("{mode} token, forged claims"),
            &verifier.verify(&parts.join(".")),
        );
        let cut = &token[..token.len() / 2];
        texts.result(&format!("{mode} token, cut"), &verifier.verify(cut));
    }
    texts.result(
        "garbage token",
        &verifier.verify("not a token at all, just words"),
    );
    let failing_surrogate = SessionSigner::new(failing.clone(), "web").unwrap();
    let result = failing_surrogate.sign(&claims).await;
    assert!(result.is_err(), "a disabled key cannot certify a surrogate");
    texts.result("session token from a failing key", &result);
    texts.debug("failing surrogate signer", &failing_surrogate);

    // The surrogate signer itself: certified keys, signatures, rotation status.
    for (what, managed) in [("working", ec), ("failing", failing)] {
        let surrogates = SurrogateSigner::new(managed, "web").unwrap();
        texts.result(&format!("{what} surrogate"), &surrogates.current().await);
        let message = format!("surrogate message, {what}");
        secrets.digests("digest of a surrogate-signed message", message.as_bytes());
        texts.result(
            &format!("{what} surrogate signature"),
            &surrogates.sign(message.as_bytes()).await,
        );
        texts.debug(&format!("{what} surrogate status"), &surrogates.status());
        texts.debug(&format!("{what} surrogate signer"), &surrogates);
    }
}

async fn snowflake_pass(
    rsa_local: Arc<dyn RemoteSigner>,
    rsa_vault: Arc<dyn RemoteSigner>,
    ec: Arc<dyn RemoteSigner>,
    texts: &mut Texts,
    secrets: &mut Secrets,
) {
    for (name, signer) in [("local", rsa_local), ("vault", rsa_vault)] {
        let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
        texts.debug(&format!("snowflake auth, {name}"), &auth);
        let token = auth.login_token().await.expect("a login token");
        secrets.jws(&format!("snowflake login JWT, {name}"), token.as_str());
        secrets.text(&format!("snowflake login JWT, {name}"), token.as_str());
        texts.debug(&format!("snowflake token, {name}"), &token);
        let tokens = SqlApiTokens::new(auth);
        let bearer = tokens.bearer_token().await.expect("a bearer token");
        secrets.jws(&format!("snowflake bearer JWT, {name}"), bearer.as_str());
        texts.debug(&format!("snowflake bearer token, {name}"), &bearer);
        texts.debug(&format!("snowflake token cache, {name}"), &tokens);
        texts.result(
            "alter user",
            &alter_user_statement("jdoe", signer.public_key(), KeySlot::default()),
        );
    }
    texts.result(
        "snowflake with an EC key",
        &KeyPairAuth::new(ec.clone(), "myorg-myaccount", "jdoe"),
    );
    texts.result(
        "snowflake dotted account",
        &KeyPairAuth::new(ec, "myorg.myaccount", "jdoe"),
    );
}

/// A `SIGN_REQUEST` body.
fn sign_request(key_blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
    let mut body = vec![13u8];
    for field in [key_blob, data] {
        body.extend_from_slice(&(field.len() as u32).to_be_bytes());
        body.extend_from_slice(field);
    }
    body.extend_from_slice(&flags.to_be_bytes());
    body
}

/// An SSHSIG signed-data blob (what `ssh-keygen -Y sign` has the agent sign) for `message`:
/// the agent signs nothing but these and SSH logins.
fn sshsig(message: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut blob = b"SSHSIG".to_vec();
    let hash = sha2::Sha512::digest(message);
    for field in [&b"file"[..], b"", b"sha512", &hash[..]] {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    blob
}

fn ssh_blob(signer: &dyn RemoteSigner) -> Vec<u8> {
    let line = signer.public_key().to_openssh("").unwrap();
    ssh_key::PublicKey::from_openssh(&line)
        .unwrap()
        .to_bytes()
        .unwrap()
}

async fn agent_pass(
    emu: &Emulator,
    local_ed: Arc<dyn RemoteSigner>,
    vault_rsa: Arc<dyn RemoteSigner>,
    ca: Arc<dyn RemoteSigner>,
    texts: &mut Texts,
    secrets: &mut Secrets,
) {
    let builder = Agent::builder()
        .key(local_ed.clone())
        .key_with_comment(vault_rsa.clone(), "vault rsa");
    texts.debug("agent builder", &builder);
    let agent = builder.build().unwrap();
    texts.debug("agent", &agent);
    let data = &sshsig(b"ssh session data to sign, managed keys")[..];
    secrets.digests("digest of ssh data", data);
    let identities = agent.respond(&[11]).await;
    assert_eq!(identities[0], 12);
    for (flags, blob) in [
        (0, ssh_blob(&*local_ed)),
        (2, ssh_blob(&*vault_rsa)),
        (4, ssh_blob(&*vault_rsa)),
    ] {
        assert_eq!(
            agent.respond(&sign_request(&blob, data, flags)).await[0],
            14
        );
    }
    // A failing managed key is logged with its cause.
    emu.inject_always(Fault::Status(500));
    let answer = agent
        .respond(&sign_request(&ssh_blob(&*vault_rsa), data, 2))
        .await;
    assert_eq!(answer, [5]);
    emu.clear_faults();
    emu.inject_always(Fault::Tamper);
    let answer = agent
        .respond(&sign_request(&ssh_blob(&*vault_rsa), data, 2))
        .await;
    assert_eq!(answer, [5]);
    emu.clear_faults();
    // Refused and malformed messages.
    let valid = sign_request(&ssh_blob(&*local_ed), data, 0);
    for message in [
        vec![],
        vec![200, 1, 2, 3],
        vec![19],
        vec![22, 0, 0, 0, 1, b'p'],
        vec![11, 0],
        sign_request(b"nope", data, 0),
        sign_request(&ssh_blob(&*vault_rsa), data, 0),
        valid[..valid.len() - 1].to_vec(),
        vec![13, 0xff, 0xff, 0xff, 0xf0, 1],
    ] {
        assert_eq!(agent.respond(&message).await, [5]);
    }

    // Certificate mode: a working CA, then one that fails.
    let certified = Agent::builder()
        .certificate_authority(
            ca.clone(),
            CertificateOptions::new(["deploy"]).validity(Duration::from_secs(300)),
        )
        .build()
        .unwrap();
    texts.result(
        "renew with a working CA",
        &certified.renew_certificates().await,
    );
    texts.debug("certificate agent", &certified);
    let identities = certified.respond(&[11]).await;
    assert_eq!(identities[0], 12);
    let len = u32::from_be_bytes(identities[5..9].try_into().unwrap()) as usize;
    let certificate = identities[9..9 + len].to_vec();
    let data = &sshsig(b"ssh session data to sign, certificate")[..];
    secrets.digests("digest of ssh data", data);
    assert_eq!(
        certified
            .respond(&sign_request(&certificate, data, 0))
            .await[0],
        14
    );
    emu.set_attributes(
        "ca",
        None,
        Attributes {
            enabled: false,
            ..Attributes::default()
        },
    );
    let failing = Agent::builder()
        .certificate_authority(ca, CertificateOptions::new(["deploy"]))
        .build()
        .unwrap();
    let result = failing.renew_certificates().await;
    assert!(result.is_err(), "a disabled CA key cannot sign");
    texts.result("renew with a failing CA", &result);
    assert_eq!(failing.respond(&[11]).await[..5], [12, 0, 0, 0, 0]);
    emu.set_attributes("ca", None, Attributes::default());
}

#[test]
fn a_full_run_leaks_no_secret_in_errors_debug_output_or_logs() {
    capture_logs();
    let mut texts = Texts::default();
    let mut secrets = Secrets::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let local = local_pass(&mut texts, &mut secrets).await;
        let find = |name: &str| -> Arc<dyn RemoteSigner> {
            local.iter().find(|(n, _)| *n == name).unwrap().1.clone()
        };
        let (emu, rsa, ec, ca) = keyvault_pass(&mut texts, &mut secrets).await;
        let failing = emu
            .signer_builder(&emu.key_url("ca", None))
            .retry(RetryPolicy::no_retries(Duration::from_secs(5)))
            .build()
            .await
            .unwrap();
        emu.set_attributes(
            "ca",
            None,
            Attributes {
                enabled: false,
                ..Attributes::default()
            },
        );
        cookie_pass(
            rsa.clone(),
            ec.clone(),
            Arc::new(failing),
            &mut texts,
            &mut secrets,
        )
        .await;
        emu.set_attributes("ca", None, Attributes::default());
        snowflake_pass(
            find("rsa"),
            rsa.clone(),
            ec.clone(),
            &mut texts,
            &mut secrets,
        )
        .await;
        agent_pass(
            &emu,
            find("ed25519"),
            rsa.clone(),
            ca,
            &mut texts,
            &mut secrets,
        )
        .await;
        let tokens = emu.issued_tokens();
        assert!(!tokens.is_empty(), "the emulator issued access tokens");
        for token in tokens {
            secrets.text("access token", &token);
        }
    });
    let logs = captured_logs();
    // Both sources reached the capture: the agent (log) and the HTTP stack (tracing).
    assert!(
        logs.contains("failed to sign"),
        "the agent's log lines are captured"
    );
    assert!(
        logs.contains("typespec_client_core") && logs.contains(" TRACE "),
        "the SDK's tracing events are captured, at every level"
    );
    for (n, line) in logs.lines().enumerate() {
        texts.add(format!("log line {n}"), line);
    }
    texts.assert_clean(&secrets);
}

#[test]
fn the_search_finds_a_planted_secret_in_logs_and_texts() {
    capture_logs();
    let planted = format!(
        "planted-{:016x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    );
    let planted_bytes = *b"0123456789abcdef-planted-bytes!!";
    let mut secrets = Secrets::default();
    secrets.text("planted text", &planted);
    secrets.bytes("planted bytes", &planted_bytes);
    log::warn!("a careless line with {planted} in it");
    tracing::debug!(value = %URL_SAFE_NO_PAD.encode(planted_bytes), "a careless event");
    let logs = captured_logs();
    assert_eq!(
        secrets.found_in(&logs),
        BTreeSet::from(["planted text".to_string(), "planted bytes".to_string()]),
        "both log paths are captured and searched"
    );
    let mut texts = Texts::default();
    texts.add("a clean error", "failed: key not found");
    assert!(texts.leaks(&with_padding(Secrets::default())).is_empty());
    texts.add("a careless error", format!("failed: {planted}"));
    let secrets = with_padding(secrets);
    let leaks = texts.leaks(&secrets);
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert!(leaks[0].starts_with("a careless error contains {\"planted text\"}"));
}

/// Enough unrelated secrets for `assert_clean`'s sanity bound.
fn with_padding(mut secrets: Secrets) -> Secrets {
    for i in 0..120u32 {
        secrets.text("padding", &format!("padding-secret-{i:08}"));
    }
    secrets
}

// ---------------------------------------------------------------------------------------------
// The command-line tool.

fn cli(args: &[&str], env: &[(String, String)], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(CLI);
    command
        .args(args)
        .env("RUST_LOG", "trace")
        .env_remove("REMOTE_SIGNER_KEY_PASSPHRASE")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run remote-signer");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn the_cli_prints_no_secret_on_stderr_or_in_unrequested_output() {
    let keys = KeyFiles::new();
    let mut secrets = Secrets::default();
    let files = standard_keys(&keys, &mut secrets);
    let path = |name: &str| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .to_str()
            .unwrap()
            .to_string()
    };
    let emu = Emulator::start();
    emu.import_pem("rsa", &std::fs::read_to_string(path("rsa")).unwrap());
    let vault_rsa = emu.key_url("rsa", None);
    let rsa_pem = std::fs::read_to_string(path("rsa")).unwrap();
    let readable = keys.write("readable.pem", rsa_pem.as_bytes(), 0o644);
    let broken = keys.write(
        "broken.pem",
        rsa_pem.replacen('\n', "\n!", 3).as_bytes(),
        0o600,
    );
    let passphrase_file = keys.write("passphrase", format!("{PASSPHRASE}\n").as_bytes(), 0o600);
    let public_pem = keys.write(
        "p256.pub.pem",
        LocalSigner::open(path("p256"))
            .unwrap()
            .public_key()
            .to_pem()
            .as_bytes(),
        0o644,
    );
    secrets.text("client secret", keyvault::CLIENT_SECRET);
    secrets.text("wrong client secret", WRONG_CLIENT_SECRET);
    let message = b"a message the CLI signs";
    secrets.digests("digest of the CLI's message", message);

    let with_passphrase = vec![(
        "REMOTE_SIGNER_KEY_PASSPHRASE".to_string(),
        PASSPHRASE.to_string(),
    )];
    let wrong_passphrase = vec![(
        "REMOTE_SIGNER_KEY_PASSPHRASE".to_string(),
        "wrong passphrase, long".to_string(),
    )];
    let wrong_secret: Vec<(String, String)> = emu
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AZURE_CLIENT_SECRET" {
                (k, WRONG_CLIENT_SECRET.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let none = vec![];
    let readable = readable.to_str().unwrap().to_string();
    let broken = broken.to_str().unwrap().to_string();
    let passphrase_file = passphrase_file.to_str().unwrap().to_string();
    let public_pem = public_pem.to_str().unwrap().to_string();

    // (what, args, environment, stdin, whether stdout is the requested secret-bearing output)
    let mut runs: Vec<(String, Output, bool)> = Vec::new();
    let mut run = |what: &str,
                   args: &[&str],
                   env: &[(String, String)],
                   stdin: Option<&[u8]>,
                   output_is_secret: bool| {
        let out = cli(args, env, stdin);
        runs.push((what.to_string(), out.clone(), output_is_secret));
        out
    };
    run(
        "encrypted key, wrong passphrase",
        &["public-key", "--key", &path("rsa-enc")],
        &wrong_passphrase,
        None,
        false,
    );
    run(
        "encrypted key, no passphrase",
        &["sign", "--key", &path("p256-enc")],
        &none,
        Some(message),
        false,
    );
    run(
        "encrypted key, passphrase file",
        &[
            "sign",
            "--key",
            &path("p256-enc"),
            "--passphrase-file",
            &passphrase_file,
        ],
        &none,
        Some(message),
        false,
    );
    run(
        "encrypted key, passphrase env",
        &["sign", "--key", &path("rsa-enc"), "--alg", "PS256"],
        &with_passphrase,
        Some(message),
        false,
    );
    run(
        "readable key file",
        &["sign", "--key", &readable],
        &none,
        Some(message),
        false,
    );
    run(
        "broken key file",
        &["public-key", "--key", &broken],
        &none,
        None,
        false,
    );
    run(
        "vault key, wrong client secret",
        &[
            "sign",
            "--key",
            &vault_rsa,
            "--no-verify-challenge-resource",
        ],
        &wrong_secret,
        Some(message),
        false,
    );
    let signed = run(
        "vault key",
        &[
            "sign",
            "--key",
            &vault_rsa,
            "--no-verify-challenge-resource",
        ],
        &emu.env(),
        Some(message),
        false,
    );
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let claims = br#"{"user":"alice"}"#;
    let token = run(
        "cookie sign",
        &["cookie", "sign", "--key", &path("p256"), "--purpose", "web"],
        &none,
        Some(claims),
        true,
    );
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    secrets.jws("CLI session token", &token);
    run(
        "cookie verify",
        &[
            "cookie",
            "verify",
            "--trust",
            &public_pem,
            "--purpose",
            "web",
        ],
        &none,
        Some(token.as_bytes()),
        false,
    );
    let mut tampered = token.clone();
    tampered.insert_str(token.len() - 10, "AAAA");
    let refused = run(
        "cookie verify, tampered",
        &[
            "cookie",
            "verify",
            "--trust",
            &public_pem,
            "--purpose",
            "web",
        ],
        &none,
        Some(tampered.as_bytes()),
        false,
    );
    assert!(!refused.status.success());
    let jwt = run(
        "snowflake jwt",
        &[
            "snowflake",
            "jwt",
            "--key",
            &path("rsa-pkcs1"),
            "--account",
            "myorg-myaccount",
            "--user",
            "jdoe",
        ],
        &none,
        None,
        true,
    );
    assert!(
        jwt.status.success(),
        "{}",
        String::from_utf8_lossy(&jwt.stderr)
    );
    secrets.jws(
        "CLI snowflake JWT",
        String::from_utf8(jwt.stdout).unwrap().trim(),
    );
    run(
        // Snowflake takes RSA, P-256 and P-384 keys: an Ed25519 key is refused.
        "snowflake jwt, Ed25519 key",
        &[
            "snowflake",
            "jwt",
            "--key",
            &path("ed25519"),
            "--account",
            "myorg-myaccount",
            "--user",
            "jdoe",
        ],
        &none,
        None,
        false,
    );
    run(
        "snowflake alter-user",
        &[
            "snowflake",
            "alter-user",
            "--key",
            &path("rsa"),
            "--user",
            "jdoe",
        ],
        &none,
        None,
        false,
    );
    for token in emu.issued_tokens() {
        secrets.text("access token", &token);
    }

    let mut texts = Texts::default();
    for (what, out, output_is_secret) in &runs {
        texts.add(
            format!("{what}: stderr"),
            String::from_utf8_lossy(&out.stderr),
        );
        if !output_is_secret {
            texts.add(
                format!("{what}: stdout"),
                String::from_utf8_lossy(&out.stdout),
            );
        }
    }
    let should_fail = [
        "encrypted key, wrong passphrase",
        "encrypted key, no passphrase",
        "readable key file",
        "broken key file",
        "vault key, wrong client secret",
        "cookie verify, tampered",
        "snowflake jwt, Ed25519 key",
    ];
    for (what, out, _) in &runs {
        assert_eq!(
            out.status.success(),
            !should_fail.contains(&what.as_str()),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    texts.assert_clean(&secrets);
}

// ---------------------------------------------------------------------------------------------
// Key files are read once.

#[test]
fn a_key_file_is_opened_once() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is missing: install it (scripts/test does)");
    }
    let keys = KeyFiles::new();
    let mut secrets = Secrets::default();
    for (name, path) in standard_keys(&keys, &mut secrets) {
        let trace = keys.path(&format!("{name}.trace"));
        let out = Command::new("strace")
            .args(["-f", "-e", "trace=open,openat,openat2", "-o"])
            .arg(&trace)
            .arg(CLI)
            .args(["public-key", "--key"])
            .arg(&path)
            .env("REMOTE_SIGNER_KEY_PASSPHRASE", PASSPHRASE)
            .output()
            .expect("run strace");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = std::fs::read_to_string(&trace).unwrap();
        let quoted = format!("\"{}\"", path.display());
        let opens = trace.lines().filter(|l| l.contains(&quoted)).count();
        assert_eq!(opens, 1, "{name} opened {opens} times:\n{trace}");
    }
}

/// A FIFO proves a single read (a second one would find it empty): the key loads from one
/// whose writer opens it while the loader is already reading, without hanging, and is the same
/// key as the file the writer copied.
#[test]
fn a_fifo_key_is_read_once_without_hanging() {
    let keys = KeyFiles::new();
    let mut secrets = Secrets::default();
    let source = keys.generate("source.pem", KeyType::P256, &mut secrets);
    let pem = std::fs::read(&source).unwrap();
    let fifo = keys.path("key.fifo");
    let status = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let writer = {
        let fifo = fifo.clone();
        // Its open blocks until the loader opens the FIFO; the loader may read first.
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            pipe.write_all(&pem).unwrap();
        })
    };
    let signer = LocalSigner::open(&fifo).expect("a FIFO with a writer is read");
    writer.join().unwrap();
    assert_eq!(
        signer.public_key(),
        LocalSigner::open(&source).unwrap().public_key()
    );
}

// ---------------------------------------------------------------------------------------------
// What the crate writes is private, whatever the umask.

#[test]
fn generate_and_agent_write_private_files_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("generated.pem");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec {CLI} generate --out {} --type p256",
            key.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "generated key file mode {mode:o}");
    let mut secrets = with_padding(Secrets::default());
    secrets.private_pem("generated key", &std::fs::read_to_string(&key).unwrap());
    secrets.public_key(LocalSigner::open(&key).unwrap().public_key());

    // The agent's socket and its directory, with the default location and a given one.
    let given = dir.path().join("given.sock");
    for socket_arg in [None, Some(given.clone())] {
        let mut command = format!(
            "umask 000 && exec {CLI} agent --verbose --key {}",
            key.display()
        );
        let trace = dir.path().join("agent.strace");
        if let Some(path) = &socket_arg {
            command.push_str(&format!(" --socket {}", path.display()));
            // Traced, to see that the socket is never bound at the given path itself, where
            // it would be open to all (umask 000) until narrowed.
            command = command.replacen(
                "exec ",
                &format!(
                    "exec strace -f -qq -e trace=bind,link,linkat -o {} ",
                    trace.display()
                ),
                1,
            );
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        // Kept open to the end: the agent fails if its stdout closes while it prints.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let socket = line
            .strip_prefix("SSH_AUTH_SOCK=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no socket line: {line:?}"))
            .to_string();
        let socket = PathBuf::from(socket);
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket mode {mode:o}");
        if socket_arg.is_none() {
            let dir_mode = std::fs::metadata(socket.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700, "socket directory mode {dir_mode:o}");
        }
        // A malformed message and a sign request, so that the agent logs something.
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let blob = ssh_blob(&LocalSigner::open(&key).unwrap());
        let data = b"data the CLI agent signs";
        secrets.digests("digest of the agent's data", data);
        for body in [
            vec![200u8, 1],
            sign_request(&blob, data, 0),
            sign_request(b"unknown", data, 0),
        ] {
            stream
                .write_all(&(body.len() as u32).to_be_bytes())
                .unwrap();
            stream.write_all(&body).unwrap();
            let mut prefix = [0u8; 4];
            stream.read_exact(&mut prefix).unwrap();
            let mut answer = vec![0u8; u32::from_be_bytes(prefix) as usize];
            stream.read_exact(&mut answer).unwrap();
        }
        drop(stream);
        // The agent's own pid (under strace, the child is strace).
        let mut pid_line = String::new();
        stdout.read_line(&mut pid_line).unwrap();
        let pid = pid_line
            .strip_prefix("SSH_AGENT_PID=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no pid line: {pid_line:?}"))
            .to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        child.wait().unwrap();
        assert!(!socket.exists(), "the socket is removed on SIGTERM");
        if socket_arg.is_some() {
            let traced = std::fs::read_to_string(&trace).unwrap();
            let given_text = format!("\"{}\"", socket.display());
            assert!(
                traced
                    .lines()
                    .any(|l| l.contains("link") && l.contains(&given_text)),
                "the socket is linked into place: {traced}"
            );
            assert!(
                !traced
                    .lines()
                    .any(|l| l.contains("bind(") && l.contains(&given_text)),
                "the socket is never bound at the given path: {traced}"
            );
            let leftovers: Vec<_> = std::fs::read_dir(socket.parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .contains("remote-signer-agent")
                })
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
        assert!(
            stderr.contains("refused"),
            "verbose agent logs refusals: {stderr}"
        );
        let mut texts = Texts::default();
        texts.add("agent stderr", stderr);
        texts.assert_clean(&secrets);
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets from the environment stay in this process.

/// The passphrase variable is not inherited by a program the CLI runs: here the `az` CLI, which
/// Azure's default credential chain runs when no other credential answers. The `az` on PATH
/// records its environment and prints a token the emulator accepts.
#[test]
fn the_env_passphrase_is_not_passed_to_child_processes() {
    const FAKE_AZ: &str = r#"#!/bin/sh
env > "$AZ_ENV_LOG"
printf '{"accessToken": "%s", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": %s, "subscription": "00000000-0000-0000-0000-000000000000", "tenant": "%s", "tokenType": "Bearer"}\n' "$AZ_TOKEN" "$(( $(date +%s) + 3600 ))" "$AZURE_TENANT_ID"
"#;
    let emu = Emulator::start();
    let version = emu.create_key("az", keyvault::KeySpec::P256);
    let url = emu.key_url("az", Some(&version));
    let bin = tempfile::tempdir().unwrap();
    let az = bin.path().join("az");
    std::fs::write(&az, FAKE_AZ).unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env_log = bin.path().join("az-env");
    let passphrase = "env-passphrase-sentinel-93b1";
    let mut command = Command::new(CLI);
    for (k, _) in std::env::vars() {
        if ["AZURE_", "IDENTITY_", "MSI_", "IMDS_", "SSL_CERT"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            command.env_remove(k);
        }
    }
    let out = command
        // With every log line on, so that the Azure SDK's `tracing` lines show too.
        .args([
            "-vvv",
            "public-key",
            "--key",
            &url,
            "--no-verify-challenge-resource",
        ])
        .env_remove("RUST_LOG")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("AZ_ENV_LOG", &env_log)
        .env("AZ_TOKEN", emu.issue_token())
        .env("AZURE_TENANT_ID", keyvault::TENANT_ID)
        .env("SSL_CERT_FILE", emu.ca_path())
        // Managed identity (IMDS) goes to a closed port, so the chain reaches `az`.
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("REMOTE_SIGNER_KEY_PASSPHRASE", passphrase)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("azure_")),
        "-vvv shows the Azure SDK's log lines: {stderr}"
    );
    assert!(!stderr.contains(passphrase), "{stderr}");
    let seen = std::fs::read_to_string(&env_log).expect("the az CLI ran");
    assert!(seen.contains("AZ_ENV_LOG="), "{seen}");
    assert!(!seen.contains("REMOTE_SIGNER_KEY_PASSPHRASE"), "{seen}");
    assert!(!seen.contains(passphrase), "{seen}");
}
