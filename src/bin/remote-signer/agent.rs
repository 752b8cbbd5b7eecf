//! `agent`: an ssh-agent in the foreground, backed by managed keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use remote_signer::ssh::{Agent, CertificateOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::Outcome;
use crate::common::KeyArgs;

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

    /// Sign any data clients send, not only SSH logins and SSHSIG blobs. DANGEROUS: every
    /// process that reaches the socket can then forge tokens and certificates of other
    /// protocols with these keys. Only for `ssh-keygen -s` with an agent-held CA key and
    /// pam_ssh_agent_auth, with a key used for nothing else
    #[arg(long)]
    dangerous_sign_any_data: bool,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<Outcome> {
    if args.certificate && args.principals.is_empty() {
        anyhow::bail!(
            "--certificate needs at least one --principal NAME: the user name(s) on the server \
             the certificate is valid for"
        );
    }
    if let Some(path) = &args.socket {
        check_socket_path(path)?;
    }

    let mut builder = Agent::builder();
    if args.dangerous_sign_any_data {
        builder = builder.dangerous_sign_any_data();
    }
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

/// Checks, before any key is opened, that `path` can become the agent's socket: its directory
/// exists, and nothing is there except a stale socket nobody listens on, which is removed.
fn check_socket_path(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "cannot listen on {}: the directory {} does not exist (create it, mode 0700, or \
             choose another --socket path)",
            path.display(),
            parent.display()
        );
    }
    let Ok(metadata) = path.symlink_metadata() else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        anyhow::bail!(
            "cannot listen on {}: it exists and is not a socket; choose another --socket path",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => anyhow::bail!(
            "cannot listen on {}: another agent is listening there; stop it or choose another \
             --socket path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            // Left behind by an agent that is gone: nothing listens, so nobody loses it.
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
            log::info!("removed the stale socket {}", path.display());
            Ok(())
        }
        Err(e) => anyhow::bail!(
            "cannot listen on {}: a socket is there that may be stale ({}); remove it with \
             `rm {}` if no agent uses it",
            path.display(),
            e.kind(),
            path.display()
        ),
    }
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
        anyhow::bail!(
            "cannot listen on {}: it already exists; choose another --socket path",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".remote-signer-agent.")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: cannot create files in {} ({})",
                path.display(),
                parent.display(),
                e.kind()
            )
        })?;
    // Errors name the path asked for, never the internal staging path.
    let failed =
        |e: std::io::Error| anyhow::anyhow!("cannot listen on {}: {}", path.display(), e.kind());
    let staged = staging.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&staged).map_err(failed)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    // A hard link never replaces an existing file.
    std::fs::hard_link(&staged, path).map_err(failed)?;
    Ok(listener)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
