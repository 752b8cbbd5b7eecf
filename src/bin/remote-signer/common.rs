//! Arguments and helpers shared by the subcommands.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Args;
use remote_signer::backend::local::{LocalKeyOptions, PASSPHRASE_ENV};
use remote_signer::clock::{Clock as _, SystemClock, from_unix_seconds};
use remote_signer::file::SmallFile;
use remote_signer::{ErrorKind, KeyRef, OpenOptions, PublicKey, RemoteSigner};
use zeroize::Zeroizing;

/// Largest message or input file read (the CLI is not a bulk tool).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// The passphrase taken from the environment at start, before any thread or child exists.
static ENV_PASSPHRASE: OnceLock<Option<Zeroizing<Vec<u8>>>> = OnceLock::new();

/// Takes `REMOTE_SIGNER_KEY_PASSPHRASE` out of the environment, so that no child process (the
/// `az` CLI that Azure credentials may run) inherits it. (The kernel's copy in /proc/PID/environ
/// stays; the README says so and recommends --passphrase-file.)
///
/// # Safety
/// Call once, first thing in `main`, while the process has one thread: removing a variable is
/// only sound then.
pub unsafe fn take_env_passphrase() {
    let value = std::env::var_os(PASSPHRASE_ENV).map(|v| Zeroizing::new(v.into_encoded_bytes()));
    if value.is_some() {
        // SAFETY: no other thread exists (this function's contract).
        unsafe { std::env::remove_var(PASSPHRASE_ENV) };
    }
    let _ = ENV_PASSPHRASE.set(value);
}

fn env_passphrase() -> Option<&'static [u8]> {
    ENV_PASSPHRASE
        .get()
        .and_then(|p| p.as_deref())
        .map(|p| &p[..])
}

/// The CLI's advice for the library's key-file errors, which name library options.
fn with_cli_hint(e: remote_signer::Error, passphrase_given: bool) -> anyhow::Error {
    let text = e.to_string();
    match e.kind() {
        ErrorKind::InsecureKeyFile => match text.find(", or for a mounted secret") {
            Some(cut) => anyhow::anyhow!(
                "{}, or for a mounted secret pass --allow-readable-key-file",
                &text[..cut]
            ),
            None => e.into(),
        },
        ErrorKind::Passphrase if !passphrase_given => {
            anyhow::anyhow!("{text} (set {PASSPHRASE_ENV} or use --passphrase-file)")
        }
        // Everything else as it is, with its sources (`{:#}` prints them).
        _ => e.into(),
    }
}

/// How long a file input that is a pipe may take (`--pipe-wait`), set once from the command
/// line before any input is read.
static PIPE_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

pub fn set_pipe_wait(wait: std::time::Duration) {
    let _ = PIPE_WAIT.set(wait);
}

fn pipe_wait() -> std::time::Duration {
    PIPE_WAIT
        .get()
        .copied()
        .unwrap_or(remote_signer::file::DEFAULT_WAIT)
}

/// Where "now" comes from, for the subcommands that make a token. Every such subcommand
/// flattens this.
#[derive(Args, Debug, Clone)]
pub struct TimeArgs {
    /// Take "now" as UNIX_SECONDS, at most 4294967295 (for reproducible tokens; default: the
    /// system clock)
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        value_parser = clap::value_parser!(u64).range(..=u64::from(u32::MAX))
    )]
    issued_at: Option<u64>,
}

impl TimeArgs {
    /// The time to sign at. The range limit keeps `--issued-at` within what
    /// [`from_unix_seconds`] reads exactly on every platform.
    pub fn now(&self) -> SystemTime {
        self.issued_at
            .map_or_else(|| SystemClock.now(), from_unix_seconds)
    }
}

/// How to find and open a key. Every subcommand that takes a KEYREF flattens this.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The key: a path or file: URI to a key file, a Key Vault key URL, an AWS KMS key or
    /// alias ARN, or a pkcs11: URI
    #[arg(long, value_name = "KEYREF")]
    pub key: String,

    /// Read the key passphrase from the first line of FILE
    /// (default: the REMOTE_SIGNER_KEY_PASSPHRASE environment variable)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Accept a key file that group or others can read (for mounted secrets only)
    #[arg(long)]
    pub allow_readable_key_file: bool,

    /// Key Vault: do not require the vault's authentication challenge to name a resource in
    /// the vault's domain (for emulators and private endpoints only)
    #[arg(long)]
    pub no_verify_challenge_resource: bool,
}

impl KeyArgs {
    fn passphrase_given(&self) -> bool {
        self.passphrase_file.is_some() || env_passphrase().is_some()
    }

    fn local_options(&self) -> anyhow::Result<LocalKeyOptions> {
        let mut local = LocalKeyOptions::new()
            .pipe_wait(pipe_wait())
            .dangerous_allow_readable_file(self.allow_readable_key_file);
        if let Some(passphrase) = env_passphrase() {
            local = local.passphrase(passphrase);
        }
        if let Some(file) = &self.passphrase_file {
            local = local.passphrase_file(file)?;
        }
        Ok(local)
    }

    pub fn options(&self) -> anyhow::Result<OpenOptions> {
        Ok(OpenOptions::new()
            .local(self.local_options()?)
            .verify_challenge_resource(!self.no_verify_challenge_resource))
    }

    pub async fn open(&self) -> anyhow::Result<Arc<dyn RemoteSigner>> {
        let key_ref: KeyRef = self.key.parse()?;
        key_ref
            .open(&self.options()?)
            .await
            .map_err(|e| with_cli_hint(e, self.passphrase_given()))
    }

    /// The public key named by `--key`: a public key file (PEM, DER, JWK or an OpenSSH line),
    /// a private key file (read once into wiped memory) or a Key Vault key.
    pub async fn public_key(&self) -> anyhow::Result<PublicKey> {
        match self.key.parse::<KeyRef>()? {
            KeyRef::File(path) => self
                .local_options()?
                .public_key(&path)
                .map_err(|e| with_cli_hint(e, self.passphrase_given())),
            _ => Ok(self.open().await?.public_key().clone()),
        }
    }
}

/// A trusted or verifying public key given as a KEYREF or a public key file, or inline PEM;
/// for `verify --public-key` and `cookie verify --trust`. Passphrases come from the
/// environment only.
pub async fn public_key_of(spec: &str) -> anyhow::Result<PublicKey> {
    if spec.trim_start().starts_with("-----BEGIN") {
        return Ok(PublicKey::from_pem(spec)?);
    }
    KeyArgs {
        key: spec.to_string(),
        passphrase_file: None,
        allow_readable_key_file: false,
        no_verify_challenge_resource: false,
    }
    .public_key()
    .await
}

/// Reads `--in FILE`, or stdin when no file is given.
pub fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        Some(path) => {
            let read = SmallFile::new("input file")
                .max_bytes(MAX_INPUT as usize)
                .wait(pipe_wait())
                .read(path)?;
            bytes.extend_from_slice(read.bytes());
        }
        None => {
            std::io::stdin()
                .lock()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
        }
    };
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_INPUT,
        "input is larger than 64 MiB"
    );
    Ok(bytes)
}

/// Writes to stdout; a closed pipe is not worth an error message.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to standard output"),
    }
}

/// `println!` that treats a closed stdout (`| head`) as the end of output, not a panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::common::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())?
    };
}
