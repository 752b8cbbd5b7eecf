//! `snowflake jwt` and `snowflake alter-user`.

use std::time::Duration;

use clap::{Args, Subcommand};
use remote_signer::RemoteSigner as _;
use remote_signer::snowflake::{KeyPairAuth, KeySlot, LOGIN_LIFETIME, alter_user_statement};

use crate::Outcome;
use crate::common::{KeyArgs, TimeArgs, write_stdout};

#[derive(Args)]
pub struct SnowflakeArgs {
    #[command(subcommand)]
    command: SnowflakeCommand,
}

#[derive(Subcommand)]
enum SnowflakeCommand {
    /// Print a key-pair JWT for ACCOUNT and USER, as the official connectors make it
    Jwt(JwtArgs),
    /// Print the ALTER USER statement that registers the key's public half
    AlterUser(AlterUserArgs),
}

#[derive(Args)]
struct JwtArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Account identifier: org-account, a locator, or locator.region.cloud
    #[arg(long)]
    account: String,
    /// User name (uppercased in the token)
    #[arg(long)]
    user: String,
    /// Token lifetime in seconds, at most 3600
    #[arg(long, value_name = "SECS", default_value_t = LOGIN_LIFETIME.as_secs())]
    lifetime: u64,
    #[command(flatten)]
    time: TimeArgs,
}

#[derive(Args)]
struct AlterUserArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// User name, as created in Snowflake
    #[arg(long)]
    user: String,
    /// Key slot: 1 for RSA_PUBLIC_KEY, 2 for RSA_PUBLIC_KEY_2
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    slot: u8,
}

pub async fn run(args: SnowflakeArgs) -> anyhow::Result<Outcome> {
    match args.command {
        SnowflakeCommand::Jwt(args) => jwt(args).await,
        SnowflakeCommand::AlterUser(args) => alter_user(args).await,
    }
}

async fn jwt(args: JwtArgs) -> anyhow::Result<Outcome> {
    let issued_at = args.time.now();
    let signer = args.key.open().await?;
    let auth = KeyPairAuth::new(signer, &args.account, &args.user)?;
    let token = auth
        .token_at(issued_at, Duration::from_secs(args.lifetime))
        .await?;
    write_stdout(format!("{}\n", token.as_str()).as_bytes())?;
    Ok(Outcome::Done)
}

async fn alter_user(args: AlterUserArgs) -> anyhow::Result<Outcome> {
    let slot = if args.slot == 2 {
        KeySlot::Second
    } else {
        KeySlot::First
    };
    let signer = args.key.open().await?;
    let statement = alter_user_statement(&args.user, signer.public_key(), slot)?;
    write_stdout(format!("{statement}\n").as_bytes())?;
    Ok(Outcome::Done)
}
