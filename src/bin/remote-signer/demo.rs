//! `demo`: the main job end to end on a throwaway local key, no cloud account needed.

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
        let signer: std::sync::Arc<dyn RemoteSigner> =
            std::sync::Arc::new(LocalSigner::open(&path)?);
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
    crate::say!("demo: all signatures verified");
    Ok(Outcome::Done)
}
