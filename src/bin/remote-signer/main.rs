//! `remote-signer`: sign with keys the application never holds.
//!
//! Every failure prints one line on stderr and exits non-zero (2, or 1 for "verified: invalid");
//! no backtrace, no key material.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "ssh-agent")]
mod agent;
mod common;
mod cookie;
mod demo;
mod jwt;
mod keys;
mod snowflake;
#[cfg(feature = "x509")]
mod x509;

#[derive(Parser)]
#[command(
    name = "remote-signer",
    version,
    about = "Sign with keys the application never holds"
)]
struct Cli {
    /// Log more on stderr: -v for this tool's details, -vv and -vvv for the Azure SDK's too
    /// (RUST_LOG, as `target=level,...`, takes precedence)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// How long a file input that is a pipe (`--key <(pass show key)`) may take to deliver,
    /// in seconds: longer for a password manager that first asks for its own passphrase
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pipe_wait: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the public key (pem, der, jwk or openssh)
    PublicKey(keys::PublicKeyArgs),
    /// Print the key's fingerprint (snowflake or openssh form)
    Fingerprint(keys::FingerprintArgs),
    /// Sign a message; prints the signature, base64url without padding
    Sign(keys::SignArgs),
    /// Verify a signature; exit 0 if valid, 1 if invalid
    Verify(keys::VerifyArgs),
    /// Generate a new key file (mode 0600), for development
    Generate(keys::GenerateArgs),
    /// Sign and verify session tokens (cookies)
    #[command(subcommand)]
    Cookie(cookie::CookieCommand),
    /// Snowflake key-pair JWTs and the ALTER USER statement that registers the key
    Snowflake(snowflake::SnowflakeArgs),
    /// Key-pair JWTs for GitHub Apps, Entra ID, APNs and any OAuth server (RFC 7523)
    #[command(subcommand)]
    Jwt(jwt::JwtCommand),
    /// X.509: a self-signed certificate or a certificate request signed by the key
    #[cfg(feature = "x509")]
    #[command(subcommand)]
    X509(x509::X509Command),
    /// Run the main job end to end on a throwaway local key and say what happened
    Demo(demo::DemoArgs),
    /// Run an ssh-agent in the foreground whose identities are managed keys or short-lived
    /// certificates they sign
    #[cfg(feature = "ssh-agent")]
    Agent(agent::AgentArgs),
}

/// Installs the one subscriber for both facades: the library's `tracing` lines (the Azure SDK)
/// and its `log` lines (the ssh-agent), on stderr. Quiet by default except this crate's own
/// notices (the agent's refusals); `RUST_LOG` replaces the filter when set.
fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let default = match verbose {
        0 => "remote_signer=info",
        1 => "warn,remote_signer=debug",
        2 => "info,remote_signer=debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value.parse::<Targets>().unwrap_or_else(|_| {
            eprintln!(
                "remote-signer: warning: RUST_LOG is not `target=level,...`; using the default"
            );
            default.parse().expect("the default filter parses")
        }),
        _ => default.parse().expect("the default filter parses"),
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .without_time(),
        )
        .with(filter)
        .try_init();
}

/// What a subcommand reports besides success.
pub enum Outcome {
    Done,
    /// A verification ran and failed: exit 1, the message goes to stderr.
    Invalid(String),
}

fn main() -> ExitCode {
    // SAFETY: nothing has started a thread yet (the runtime is built below).
    unsafe { common::take_env_passphrase() };
    let cli = Cli::parse();
    init_logging(cli.verbose);
    common::set_pipe_wait(std::time::Duration::from_secs(cli.pipe_wait));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remote-signer: error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::PublicKey(args) => keys::public_key(args).await,
            Command::Fingerprint(args) => keys::fingerprint(args).await,
            Command::Sign(args) => keys::sign(args).await,
            Command::Verify(args) => keys::verify(args).await,
            Command::Generate(args) => keys::generate(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Cookie(command) => cookie::run(command).await,
            Command::Snowflake(args) => snowflake::run(args).await,
            Command::Jwt(command) => jwt::run(command).await,
            #[cfg(feature = "x509")]
            Command::X509(command) => x509::run(command).await,
            #[cfg(feature = "ssh-agent")]
            Command::Agent(args) => agent::run(args).await,
        }
    });
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid(why)) => {
            eprintln!("remote-signer: {why}");
            ExitCode::from(1)
        }
        Err(e) => {
            // `{:#}` joins the context chain on one line.
            let text = format!("{e:#}").replace('\n', " ");
            eprintln!("remote-signer: error: {text}");
            ExitCode::from(2)
        }
    }
}
