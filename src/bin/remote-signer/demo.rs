//! `demo`: the main job end to end on a throwaway local key, no cloud account needed.

use std::sync::Arc;

use clap::Args;
use remote_signer::backend::local::LocalSigner;
use remote_signer::{KeyType, PublicKey, RemoteSigner};

use crate::Outcome;

#[derive(Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("remote-signer-demo")
        .tempdir()?;
    crate::say!(
        "remote-signer demo: three throwaway local key files (Ed25519, P-256, RSA-2048), made in a \
         private temporary directory that is deleted at exit; no cloud account, no network"
    );
    crate::say!("local keys, each signing with every algorithm it supports:");
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
    cookies(dir.path()).await?;
    snowflake(dir.path()).await?;
    ssh_agent(dir.path()).await?;
    crate::say!("demo: all signatures verified");
    crate::say!("next:");
    crate::say!(
        "  - the library: the programs in README.md, and `cargo run --example cookie_app --features axum`"
    );
    crate::say!(
        "  - the agent with a real ssh: `remote-signer generate --out key.pem`, run \
         `remote-signer agent --key key.pem` in one shell, then in another set the SSH_AUTH_SOCK \
         it prints and run `ssh-add -l`, or `ssh` to a host whose authorized_keys has \
         `remote-signer public-key --key key.pem --format openssh`"
    );
    crate::say!(
        "  - a Key Vault key: `cargo run -p keyvault-emulator` prints the environment and key \
         URLs to use as --key"
    );
    Ok(Outcome::Done)
}

/// A Snowflake key-pair JWT from the demo's RSA key, and the SQL API token cache at work.
async fn snowflake(dir: &std::path::Path) -> anyhow::Result<()> {
    use remote_signer::Counted;
    use remote_signer::snowflake::{KeyPairAuth, KeySlot, SqlApiTokens, alter_user_statement};

    let key = Arc::new(Counted::new(LocalSigner::open(dir.join("rsa.pem"))?));
    let auth = KeyPairAuth::new(key.clone(), "myorg-myaccount", "demo_user")?;
    crate::say!(
        "snowflake key-pair authentication (no Snowflake service is contacted: tokens are made \
         and checked here, with the RSA key):"
    );
    crate::say!(
        "  register once: {}",
        alter_user_statement("demo_user", key.public_key(), KeySlot::First)?
    );
    let login = auth.login_token().await?;
    crate::say!(
        "  login token for {} ({} bytes, valid 60 s), signed and checked against the public key",
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
        "  1000 SQL API bearer-token fetches from 50 tasks (counted here, nothing sent): {} RSA \
         signature(s); one cached token served them all",
        key.signatures() - before
    );
    Ok(())
}

/// Session cookies in surrogate mode: the managed key certifies one in-memory key, which signs
/// every cookie; any instance verifies with the managed public key alone.
async fn cookies(dir: &std::path::Path) -> anyhow::Result<()> {
    use remote_signer::Counted;
    use remote_signer::cookie::{SessionSigner, SessionVerifier};
    use remote_signer::surrogate::TrustedKey;

    let managed = Arc::new(Counted::new(LocalSigner::open(dir.join("p256.pem"))?));
    let signer = SessionSigner::new(managed.clone(), "session")?;
    let verifier = SessionVerifier::new([TrustedKey::new(managed.public_key().clone())], "session");
    let mut token = String::new();
    for user in 0..1000 {
        token = signer
            .sign(&serde_json::json!({ "user": format!("user-{user}") }))
            .await?;
        verifier.verify(&token)?;
    }
    crate::say!("session cookies (surrogate mode, the P-256 key as the managed key):");
    crate::say!(
        "  1000 cookies signed by an in-memory Ed25519 surrogate key and verified with the managed \
         public key alone: {} managed-key (ES256) signature(s), for the surrogate's certificate; \
         a cookie is {} bytes",
        managed.signatures(),
        token.len()
    );
    let mut tampered = token.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let refused = verifier.verify(std::str::from_utf8(&tampered)?).is_err();
    anyhow::ensure!(refused, "a tampered cookie verified");
    let other = SessionVerifier::new([TrustedKey::new(managed.public_key().clone())], "csrf");
    anyhow::ensure!(
        other
            .verify(&signer.sign(&serde_json::json!({})).await?)
            .is_err(),
        "a cookie verified for another purpose"
    );
    crate::say!("  a tampered cookie and a cookie for another purpose are refused");
    Ok(())
}

/// The ssh-agent in certificate mode, answering in-process: it lists only a short-lived
/// certificate (never the CA key) and signs logins with no CA call until renewal.
async fn ssh_agent(dir: &std::path::Path) -> anyhow::Result<()> {
    use remote_signer::Counted;
    use remote_signer::ssh::{Agent, CertificateOptions};
    use sha2::Digest as _;
    use ssh_encoding::{Decode, Encode};

    let ca = Arc::new(Counted::new(LocalSigner::open(dir.join("ed25519.pem"))?));
    let agent = Agent::builder()
        .certificate_authority(ca.clone(), CertificateOptions::new(["demo"]))
        .build()?;
    // SSH_AGENTC_REQUEST_IDENTITIES, then SSH_AGENTC_SIGN_REQUEST for the one identity.
    let answer = agent.respond(&[11]).await;
    let mut reader = &answer[..];
    anyhow::ensure!(u8::decode(&mut reader)? == 12, "no identities answer");
    let count = u32::decode(&mut reader)?;
    let blob = Vec::<u8>::decode(&mut reader)?;
    // The comment names the CA key by its file, which is gone at exit: not printed.
    let _comment = String::decode(&mut reader)?;
    let certificate = ssh_key::Certificate::from_bytes(&blob)?;
    let ca_listed = *certificate.public_key() == ca.public_key().to_ssh_key_data()?;
    anyhow::ensure!(
        count == 1 && !ca_listed,
        "the agent must list only the certificate"
    );
    crate::say!(
        "ssh-agent in certificate mode, the Ed25519 key as the user CA (requests answered in this \
         process: no socket, no ssh client, no sshd):"
    );
    crate::say!(
        "  lists {count} identity: an Ed25519 certificate for {:?}, valid {} s (the \
         3600 s asked for, starting 60 s in the past so that a server whose clock is a little \
         behind accepts it, rounded up to a whole second); the CA key is not listed",
        certificate.valid_principals(),
        certificate.valid_before() - certificate.valid_after()
    );
    let public = PublicKey::from_ssh_key_data(certificate.public_key())?;
    for login in 0..100u32 {
        // What ssh signs to log in (RFC 4252 section 7): the agent signs nothing else.
        let mut data = Vec::new();
        sha2::Sha256::digest(login.to_be_bytes())
            .as_slice()
            .encode(&mut data)?;
        50u8.encode(&mut data)?;
        for field in ["demo", "ssh-connection", "publickey"] {
            field.encode(&mut data)?;
        }
        1u8.encode(&mut data)?;
        certificate
            .algorithm()
            .to_certificate_type()
            .encode(&mut data)?;
        blob.encode(&mut data)?;
        let mut request = vec![13u8];
        blob.encode(&mut request)?;
        data.encode(&mut request)?;
        0u32.encode(&mut request)?;
        let answer = agent.respond(&request).await;
        let mut reader = &answer[..];
        anyhow::ensure!(u8::decode(&mut reader)? == 14, "sign request refused");
        let signature = ssh_key::Signature::decode(&mut &Vec::<u8>::decode(&mut reader)?[..])?;
        public.verify(remote_signer::Algorithm::EdDSA, &data, signature.as_bytes())?;
    }
    crate::say!(
        "  100 login sign requests answered and verified: {} CA signature(s), the certificate's",
        ca.signatures()
    );
    Ok(())
}
