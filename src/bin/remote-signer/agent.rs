//! `agent`: an ssh-agent in the foreground, backed by managed keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use remote_signer::ssh::{Agent, CertificateOptions};
use tokio::signal::unix::{signal, SignalKind};

use crate::common::KeyArgs;
use crate::Outcome;

#[derive(Args)]
pub struct AgentArgs {
    /// Listen on this socket path (default: a new private directory in the temporary directory)
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// A key to offer, or with --certificate the CA key that signs certificates (repeatable)
    #[arg(long = "key", value_name = "KEYREF", required = true)]
    keys: Vec<String>,

    /// Read the key passphrase from the first line of FILE
    /// (default: the REMOTE_SIGNER_KEY_PASSPHRASE environment variable)
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,

    /// Accept a key file that group or others can read (for mounted secrets only)
    #[arg(long)]
    allow_readable_key_file: bool,

    /// Key Vault: do not require the vault's authentication challenge to name a resource in
    /// the vault's domain (for emulators and private endpoints only)
    #[arg(long)]
    no_verify_challenge_resource: bool,

    /// Offer an in-memory key with a short-lived OpenSSH user certificate signed by each key,
    /// instead of the keys themselves
    #[arg(long)]
    certificate: bool,

    /// A user name the certificate is valid for (repeatable; required with --certificate)
    #[arg(long = "principal", value_name = "NAME", requires = "certificate")]
    principals: Vec<String>,

    /// Certificate validity in seconds; it is renewed when a quarter is left
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3600,
        requires = "certificate"
    )]
    validity: u64,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<Outcome> {
    let mut builder = Agent::builder();
    for key in &args.keys {
        let key_args = KeyArgs {
            key: key.clone(),
            passphrase_file: args.passphrase_file.clone(),
            allow_readable_key_file: args.allow_readable_key_file,
            no_verify_challenge_resource: args.no_verify_challenge_resource,
        };
        // The error names the key itself (user information in a URL never reaches it).
        let signer = key_args.open().await?;
        builder = if args.certificate {
            let options = CertificateOptions::new(args.principals.iter().cloned())
                .validity(Duration::from_secs(args.validity));
            builder.certificate_authority(signer, options)
        } else {
            let comment = key.clone();
            builder.key_with_comment(signer, comment)
        };
    }
    let agent = builder.build()?;
    agent
        .renew_certificates()
        .await
        .context("cannot sign the first certificate")?;

    let (socket, _private_dir) = match &args.socket {
        Some(path) => (path.clone(), None),
        None => {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::Builder::new()
                .prefix("remote-signer-agent.")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                .context("cannot create a private directory for the socket")?;
            (
                dir.path().join(format!("agent.{}", std::process::id())),
                Some(dir),
            )
        }
    };
    let listener = bind_private(&socket)?;
    let _remove_socket = RemoveOnDrop(socket.clone());

    let pid = std::process::id();
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "SSH_AUTH_SOCK={sock}; export SSH_AUTH_SOCK;\nSSH_AGENT_PID={pid}; export SSH_AGENT_PID;\necho Agent pid {pid};\n",
        sock = socket.display()
    )
    .and_then(|()| out.flush())
    .context("cannot write to standard output")?;
    drop(out);

    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    };
    agent.serve_until(listener, shutdown).await;
    log::info!("agent stopped, socket {} removed", socket.display());
    Ok(Outcome::Done)
}

/// Binds `path` as a mode-0600 socket. A path that exists is never replaced: it may be
/// another agent's socket.
///
/// The socket is bound inside a new 0700 directory next to `path`, narrowed to 0600 there, and
/// only then linked into place, so whatever the umask, no other user can reach it while it is
/// still open to all.
fn bind_private(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.symlink_metadata().is_ok() {
        anyhow::bail!("{} already exists", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".remote-signer-agent.")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a private directory in {}", parent.display()))?;
    let staged = staging.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&staged)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    // A hard link never replaces an existing file.
    std::fs::hard_link(&staged, path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    Ok(listener)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
