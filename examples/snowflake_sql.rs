//! Runs one SQL statement through the Snowflake SQL API, authenticated by a key-pair JWT that a
//! key you never hold signs (a Key Vault key, or a key file for development).
//!
//! ```text
//! cargo run --example snowflake_sql -- --key KEYREF --account ACCOUNT --user USER \
//!     [--url https://<account>.snowflakecomputing.com] [--ca-cert FILE] [STATEMENT]
//! ```
//!
//! Register the key's public half on the user once, with the statement that
//! `remote-signer snowflake alter-user --key KEYREF --user USER` prints. An encrypted key file's
//! passphrase comes from `REMOTE_SIGNER_KEY_PASSPHRASE`. `--url` defaults to the account's own
//! URL; `--ca-cert` trusts only the given CA (for a private endpoint or a test server).
//!
//! Prints each row of the result as a JSON array on stdout, and the SQL API's status code and
//! message on stderr; exits with 1 when the statement fails and 2 for bad arguments.

use std::error::Error;
use std::path::PathBuf;

use remote_signer::backend::local::LocalKeyOptions;
use remote_signer::snowflake::{KeyPairAuth, SqlApiTokens};
use remote_signer::{KeyRef, OpenOptions};

type BoxError = Box<dyn Error + Send + Sync>;

/// What to run, and where.
struct Config {
    /// The signing key (KEYREF).
    key: String,
    /// Account identifier, e.g. `myorg-myaccount`.
    account: String,
    /// User name.
    user: String,
    /// The account URL; `https://<account>.snowflakecomputing.com` when not given.
    url: Option<String>,
    /// A PEM CA certificate to trust instead of the system's roots.
    ca_cert: Option<PathBuf>,
    /// The statement.
    statement: String,
}

impl Config {
    /// Reads `--key`, `--account`, `--user`, `--url`, `--ca-cert` and the statement.
    fn from_args(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (mut key, mut account, mut user, mut url, mut ca_cert, mut statement) =
            (None, None, None, None, None, None);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--key" => key = Some(value()?),
                "--account" => account = Some(value()?),
                "--user" => user = Some(value()?),
                "--url" => url = Some(value()?),
                "--ca-cert" => ca_cert = Some(PathBuf::from(value()?)),
                _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
                _ => statement = Some(arg),
            }
        }
        Ok(Config {
            key: key.ok_or("--key KEYREF is required")?,
            account: account.ok_or("--account ACCOUNT is required")?,
            user: user.ok_or("--user USER is required")?,
            url,
            ca_cert,
            statement: statement.unwrap_or_else(|| "SELECT CURRENT_USER()".to_string()),
        })
    }
}

/// Sends the statement and returns the SQL API's result set.
async fn run(config: &Config) -> Result<serde_json::Value, BoxError> {
    let local = LocalKeyOptions::new().passphrase_from_env();
    let signer = config
        .key
        .parse::<KeyRef>()?
        .open(&OpenOptions::new().local(local))
        .await?;
    // In a service, keep one `SqlApiTokens` for the process: it signs once per token lifetime
    // however many requests use it.
    let tokens = SqlApiTokens::new(KeyPairAuth::new(signer, &config.account, &config.user)?);

    let url = match &config.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!(
            "https://{}.snowflakecomputing.com",
            config.account.to_ascii_lowercase()
        ),
    };
    // This crate's TLS is rustls with the ring provider (no aws-lc build); say so once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut client = reqwest::Client::builder()
        .user_agent(concat!("remote-signer-example/", env!("CARGO_PKG_VERSION")))
        .https_only(true);
    if let Some(ca_cert) = &config.ca_cert {
        let pem = std::fs::read(ca_cert)?;
        client = client.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
    }
    let client = client.build()?;

    let body = serde_json::json!({ "statement": config.statement, "timeout": 60 });
    let mut request = client
        .post(format!("{url}/api/v2/statements"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string());
    for (name, value) in tokens.bearer_token().await?.sql_api_headers() {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("SQL API answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        // Snowflake's error code and message say what is wrong (e.g. 390144: JWT is invalid).
        return Err(format!(
            "SQL API answered {status}: {} {}",
            answer["code"].as_str().unwrap_or("?"),
            answer["message"].as_str().unwrap_or("")
        )
        .into());
    }
    Ok(answer)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(why) => {
            eprintln!("snowflake_sql: {why}");
            eprintln!(
                "usage: snowflake_sql --key KEYREF --account ACCOUNT --user USER \
                 [--url URL] [--ca-cert FILE] [STATEMENT]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match run(&config).await {
        Ok(answer) => {
            for row in answer["data"].as_array().into_iter().flatten() {
                println!("{row}");
            }
            eprintln!(
                "snowflake_sql: {} {}",
                answer["code"].as_str().unwrap_or("?"),
                answer["message"].as_str().unwrap_or("")
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snowflake_sql: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
