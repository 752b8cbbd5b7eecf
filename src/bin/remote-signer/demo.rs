//! `demo`: the main job end to end on a throwaway local key, no cloud account needed.

use std::sync::Arc;

use clap::Args;
use remote_signer::backend::local::LocalSigner;
use remote_signer::{KeyType, RemoteSigner};

use crate::Outcome;

#[derive(Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("remote-signer-demo")
        .tempdir()?;
    crate::say!(
        "remote-signer demo (throwaway keys in {})",
        dir.path().display()
    );
    for (name, key_type) in [
        ("ed25519", KeyType::Ed25519),
        ("p256", KeyType::P256),
        ("rsa", KeyType::Rsa),
    ] {
        let path = dir.path().join(format!("{name}.pem"));
        LocalSigner::generate_to_file(key_type, &path)?;
        let signer: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::open(&path)?);
        let message = b"hello from remote-signer";
        for &alg in key_type.algorithms() {
            let signature = signer.sign(alg, message).await?;
            signer
                .public_key()
                .verify(alg, message, signature.as_bytes())?;
            let tampered = signer
                .public_key()
                .verify(alg, b"hello from remote-signeR", signature.as_bytes())
                .is_err();
            anyhow::ensure!(tampered, "a tampered message verified");
            crate::say!(
                "  {key_type:<8} {alg:<6} signed {} bytes -> {}-byte signature, verified; tampered message refused",
                message.len(),
                signature.as_bytes().len()
            );
        }
        crate::say!(
            "  {key_type:<8} fingerprints: snowflake {}  openssh {}",
            signer.public_key().snowflake_fingerprint(),
            signer.public_key().openssh_fingerprint()?
        );
    }
    snowflake(dir.path()).await?;
    crate::say!("demo: all signatures verified");
    Ok(Outcome::Done)
}

/// A Snowflake key-pair JWT from the demo's RSA key, and the SQL API token cache at work.
async fn snowflake(dir: &std::path::Path) -> anyhow::Result<()> {
    use remote_signer::snowflake::{alter_user_statement, KeyPairAuth, KeySlot, SqlApiTokens};
    use remote_signer::Counted;

    let key = Arc::new(Counted::new(LocalSigner::open(dir.join("rsa.pem"))?));
    let auth = KeyPairAuth::new(key.clone(), "myorg-myaccount", "demo_user")?;
    crate::say!("snowflake:");
    crate::say!(
        "  register once: {}",
        alter_user_statement("demo_user", key.public_key(), KeySlot::First)?
    );
    let login = auth.login_token().await?;
    crate::say!(
        "  login token for {} ({} bytes, valid 60 s), signed and checked",
        auth.subject(),
        login.as_str().len()
    );
    let tokens = Arc::new(SqlApiTokens::new(auth));
    let before = key.signatures();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                tokens.bearer_token().await?;
            }
            Ok::<_, remote_signer::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    crate::say!(
        "  1000 SQL API requests from 50 tasks: {} RSA signature(s), one token shared",
        key.signatures() - before
    );
    Ok(())
}
