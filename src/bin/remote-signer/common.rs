//! Arguments and helpers shared by the subcommands.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use remote_signer::backend::local::LocalKeyOptions;
use remote_signer::{KeyRef, OpenOptions, RemoteSigner};

/// Largest message or input file read (the CLI is not a bulk tool).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// How to find and open a key. Every subcommand that takes a KEYREF flattens this.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The key: a path or file: URI to a key file, a Key Vault key URL or a pkcs11: URI
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
    pub fn options(&self) -> anyhow::Result<OpenOptions> {
        let mut local = LocalKeyOptions::new()
            .passphrase_from_env()
            .dangerous_allow_readable_file(self.allow_readable_key_file);
        if let Some(file) = &self.passphrase_file {
            local = local.passphrase_file(file)?;
        }
        Ok(OpenOptions::new()
            .local(local)
            .verify_challenge_resource(!self.no_verify_challenge_resource))
    }

    pub async fn open(&self) -> anyhow::Result<Arc<dyn RemoteSigner>> {
        let key_ref: KeyRef = self.key.parse()?;
        Ok(key_ref.open(&self.options()?).await?)
    }
}

/// Reads `--in FILE`, or stdin when no file is given.
pub fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => std::io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?,
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
