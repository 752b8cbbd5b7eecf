//! `cookie sign`, `cookie verify`: session tokens from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use remote_signer::cookie::{SessionSigner, SessionVerifier, SigningMode};
use remote_signer::surrogate::TrustedKey;

use crate::Outcome;
use crate::common::{KeyArgs, read_input, write_stdout};

#[derive(Subcommand)]
pub enum CookieCommand {
    /// Sign a JSON object of claims (stdin unless --in); prints the token
    Sign(SignArgs),
    /// Verify a token (stdin unless --in); prints its claims as JSON and exits 0, or prints one
    /// line on stderr and exits 1
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The purpose (cookie name or role); becomes the token's `aud`
    #[arg(long, value_name = "NAME")]
    purpose: String,
    /// Token lifetime in seconds
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    ttl: u64,
    /// Sign with the managed key itself instead of a certified surrogate
    #[arg(long)]
    direct: bool,
    /// Read the claims from FILE instead of standard input
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A trusted managed key: a KEYREF, or a public key file (PEM, DER, JWK or OpenSSH);
    /// repeat for several
    #[arg(long, value_name = "KEYREF_OR_PUBLIC_KEY_PEM", required = true)]
    trust: Vec<String>,
    /// The purpose the token must carry as `aud`
    #[arg(long, value_name = "NAME")]
    purpose: String,
    /// Read the token from FILE instead of standard input
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

pub async fn run(command: CookieCommand) -> anyhow::Result<Outcome> {
    match command {
        CookieCommand::Sign(args) => sign(args).await,
        CookieCommand::Verify(args) => verify(args).await,
    }
}

async fn sign(args: SignArgs) -> anyhow::Result<Outcome> {
    let input = read_input(args.input.as_deref())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&input).context("the claims are not valid JSON")?;
    anyhow::ensure!(claims.is_object(), "the claims must be a JSON object");
    let managed = args.key.open().await?;
    let ttl = Duration::from_secs(args.ttl);
    let signer = if args.direct {
        SessionSigner::builder(managed, &args.purpose)
            .mode(SigningMode::Direct)
            .build()?
    } else {
        SessionSigner::new(managed, &args.purpose)?
    };
    let token = signer.sign_with_ttl(&claims, ttl).await?;
    write_stdout(format!("{token}\n").as_bytes())?;
    Ok(Outcome::Done)
}

/// A public key given inline or in a file, else a KEYREF opened for its public key.
async fn trusted_key(trust: &str) -> anyhow::Result<TrustedKey> {
    Ok(TrustedKey::new(crate::common::public_key_of(trust).await?))
}

/// Every failure of `verify` exits 1 with one line, as its interface promises: an invalid
/// token, and also input or trusted keys that cannot be read.
async fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    match verify_inner(args).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => Ok(Outcome::Invalid(format!("error: {e:#}").replace('\n', " "))),
    }
}

async fn verify_inner(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let mut trusted = Vec::new();
    for trust in &args.trust {
        trusted.push(trusted_key(trust).await?);
    }
    let input = read_input(args.input.as_deref())?;
    let verifier = SessionVerifier::new(trusted, &args.purpose);
    let Ok(token) = std::str::from_utf8(&input) else {
        return Ok(Outcome::Invalid("invalid token: not text".into()));
    };
    match verifier.verify(token.trim()) {
        Ok(session) => {
            let mut json = serde_json::to_string(session.claims())?;
            json.push('\n');
            write_stdout(json.as_bytes())?;
            Ok(Outcome::Done)
        }
        Err(e) => Ok(Outcome::Invalid(e.to_string())),
    }
}
