//! `jwt github-app`, `jwt entra`, `jwt apns`, `jwt assertion`: print one token on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use remote_signer::Algorithm;
use remote_signer::jwt::{
    ASSERTION_DEFAULT_LIFETIME, ApnsToken, ClientAssertion, ENTRA_DEFAULT_LIFETIME, EntraAssertion,
    GITHUB_DEFAULT_LIFETIME, GitHubAppJwt, Jwt,
};

use crate::Outcome;
use crate::common::{KeyArgs, TimeArgs, write_stdout};

#[derive(Subcommand)]
pub enum JwtCommand {
    /// A GitHub App JWT (RS256; iat = now - 60, exp = now + lifetime, at most 600 s)
    GithubApp(GitHubArgs),
    /// A Microsoft Entra ID certificate client assertion (PS256, x5t#S256 of the certificate)
    Entra(EntraArgs),
    /// An Apple push (APNs) provider token (ES256, P-256 keys)
    Apns(ApnsArgs),
    /// An RFC 7523 / OAuth private_key_jwt client assertion
    Assertion(AssertionArgs),
}

#[derive(Args)]
pub struct GitHubArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The GitHub App's id or client id (the iss claim)
    #[arg(long, value_name = "ID")]
    app_id: String,
    /// Seconds from now until exp, at most 600
    #[arg(long, value_name = "SECS", default_value_t = GITHUB_DEFAULT_LIFETIME.as_secs())]
    lifetime: u64,
    #[command(flatten)]
    time: TimeArgs,
}

#[derive(Args)]
pub struct EntraArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Tenant id (GUID) or domain
    #[arg(long)]
    tenant: String,
    /// The application (client) id
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The application's certificate (PEM or DER); it must hold the key's public key
    #[arg(long, value_name = "CERT.pem")]
    certificate: PathBuf,
    /// Seconds until exp, at most 3600
    #[arg(long, value_name = "SECS", default_value_t = ENTRA_DEFAULT_LIFETIME.as_secs())]
    lifetime: u64,
    #[command(flatten)]
    time: TimeArgs,
}

#[derive(Args)]
pub struct ApnsArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The Apple developer team id (the iss claim)
    #[arg(long, value_name = "TEAM")]
    team_id: String,
    /// The APNs key id (the kid header)
    #[arg(long, value_name = "KID")]
    key_id: String,
    #[command(flatten)]
    time: TimeArgs,
}

#[derive(Args)]
pub struct AssertionArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The iss claim (for a client: its client id)
    #[arg(long, value_name = "ISS")]
    issuer: String,
    /// The sub claim (for a client: its client id)
    #[arg(long, value_name = "SUB")]
    subject: String,
    /// The aud claim (usually the token endpoint URL)
    #[arg(long, value_name = "AUD")]
    audience: String,
    /// Seconds until exp, at most 3600
    #[arg(long, value_name = "SECS", default_value_t = ASSERTION_DEFAULT_LIFETIME.as_secs())]
    lifetime: u64,
    /// JOSE algorithm (default: the key's own: RS256, ES256, ES384 or EdDSA)
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// A kid header, for servers that pick the key by it
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// An extra claim, NAME=JSON (repeatable; registered claims cannot be given)
    #[arg(long = "claim", value_name = "NAME=JSON")]
    claims: Vec<String>,
    #[command(flatten)]
    time: TimeArgs,
}

pub async fn run(command: JwtCommand) -> anyhow::Result<Outcome> {
    let token = match command {
        JwtCommand::GithubApp(args) => github(args).await?,
        JwtCommand::Entra(args) => entra(args).await?,
        JwtCommand::Apns(args) => apns(args).await?,
        JwtCommand::Assertion(args) => assertion(args).await?,
    };
    write_stdout(format!("{}\n", token.as_str()).as_bytes())?;
    Ok(Outcome::Done)
}

async fn github(args: GitHubArgs) -> anyhow::Result<Jwt> {
    let now = args.time.now();
    let signer = args.key.open().await?;
    let tokens = GitHubAppJwt::builder(signer, args.app_id)
        .lifetime(Duration::from_secs(args.lifetime))
        .build()?;
    Ok(tokens.sign_at(now).await?)
}

async fn entra(args: EntraArgs) -> anyhow::Result<Jwt> {
    let now = args.time.now();
    let certificate = std::fs::read(&args.certificate)
        .with_context(|| format!("cannot read {}", args.certificate.display()))?;
    let signer = args.key.open().await?;
    // What is wrong with the inputs is reported with the certificate's path, as it always was;
    // a --lifetime over the cap without it.
    EntraAssertion::new(
        signer.clone(),
        &args.tenant,
        args.client_id.clone(),
        &certificate,
    )
    .with_context(|| args.certificate.display().to_string())?;
    let assertions = EntraAssertion::builder(signer, &args.tenant, args.client_id, &certificate)
        .lifetime(Duration::from_secs(args.lifetime))
        .build()?;
    Ok(assertions.sign_at(now).await?)
}

async fn apns(args: ApnsArgs) -> anyhow::Result<Jwt> {
    let now = args.time.now();
    let signer = args.key.open().await?;
    Ok(ApnsToken::new(signer, args.team_id, args.key_id)?
        .sign_at(now)
        .await?)
}

async fn assertion(args: AssertionArgs) -> anyhow::Result<Jwt> {
    let now = args.time.now();
    let alg: Option<Algorithm> = args.alg.as_deref().map(str::parse).transpose()?;
    let mut extra = Vec::new();
    for claim in &args.claims {
        let (name, json) = claim
            .split_once('=')
            .context("--claim takes NAME=JSON, for example --claim 'scope=\"read\"'")?;
        let value: serde_json::Value = serde_json::from_str(json).with_context(|| {
            format!("--claim {name}: the value is not JSON (quote strings: {name}='\"text\"')")
        })?;
        extra.push((name.to_string(), value));
    }
    let signer = args.key.open().await?;
    let mut builder = ClientAssertion::builder(signer, args.issuer, args.subject, args.audience)
        .lifetime(Duration::from_secs(args.lifetime));
    if let Some(alg) = alg {
        builder = builder.algorithm(alg);
    }
    if let Some(kid) = args.kid {
        builder = builder.kid(kid);
    }
    for (name, value) in extra {
        builder = builder.claim(name, value);
    }
    Ok(builder.build()?.sign_at(now).await?)
}
