//! `x509 self-signed` and `x509 csr`: print one PEM document on stdout.

use clap::{Args, Subcommand};
use remote_signer::x509::{DEFAULT_DAYS, SelfSigned, Subject, certificate_request};

use crate::Outcome;
use crate::common::{KeyArgs, write_stdout};

#[derive(Subcommand)]
pub enum X509Command {
    /// A self-signed certificate for the key (CA:FALSE, digitalSignature)
    SelfSigned(SelfSignedArgs),
    /// A PKCS#10 certificate request for the key
    Csr(CsrArgs),
}

#[derive(Args)]
pub struct SelfSignedArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The subject, e.g. "CN=my-app,O=Example" (CN, O, OU, C, ST, L)
    #[arg(long, value_name = "DN")]
    subject: String,
    /// Days of validity from now, at most 3650
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DAYS)]
    days: u32,
}

#[derive(Args)]
pub struct CsrArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The subject, e.g. "CN=my-app,O=Example" (CN, O, OU, C, ST, L)
    #[arg(long, value_name = "DN")]
    subject: String,
}

pub async fn run(command: X509Command) -> anyhow::Result<Outcome> {
    let pem = match command {
        X509Command::SelfSigned(args) => {
            let subject: Subject = args.subject.parse()?;
            let signer = args.key.open().await?;
            SelfSigned::builder(signer, &subject)
                .days(args.days)
                .build()?
                .sign()
                .await?
                .to_pem()
        }
        X509Command::Csr(args) => {
            let subject: Subject = args.subject.parse()?;
            let signer = args.key.open().await?;
            certificate_request(signer, &subject).await?.to_pem()
        }
    };
    write_stdout(pem.as_bytes())?;
    Ok(Outcome::Done)
}
