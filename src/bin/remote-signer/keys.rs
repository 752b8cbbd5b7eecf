//! `public-key`, `fingerprint`, `sign`, `verify`, `generate`.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::{Args, ValueEnum};
use remote_signer::backend::local::LocalSigner;
use remote_signer::key::Jwks;
use remote_signer::{Algorithm, KeyType, RemoteSigner as _, Signature};

use crate::Outcome;
use crate::common::{KeyArgs, read_input, write_stdout};

#[derive(Clone, Copy, ValueEnum)]
pub enum PublicKeyFormat {
    Pem,
    Der,
    Jwk,
    Openssh,
    /// A JWK Set of every --key given, with kid, alg and use
    Jwks,
}

#[derive(Args)]
pub struct PublicKeyArgs {
    /// The key: a path or file: URI to a key file, or a Key Vault key URL (repeatable with
    /// --format jwks)
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

    /// Output form
    #[arg(long, value_enum, default_value = "pem")]
    format: PublicKeyFormat,
}

pub async fn public_key(args: PublicKeyArgs) -> anyhow::Result<Outcome> {
    let mut signers = Vec::new();
    for key in &args.keys {
        let key_args = KeyArgs {
            key: key.clone(),
            passphrase_file: args.passphrase_file.clone(),
            allow_readable_key_file: args.allow_readable_key_file,
            no_verify_challenge_resource: args.no_verify_challenge_resource,
        };
        signers.push(key_args.open().await?);
    }
    anyhow::ensure!(
        signers.len() == 1 || matches!(args.format, PublicKeyFormat::Jwks),
        "--key is given {} times; only --format jwks takes several keys",
        signers.len()
    );
    let signer = &signers[0];
    let public = signer.public_key();
    let out = match args.format {
        PublicKeyFormat::Pem => public.to_pem().into_bytes(),
        PublicKeyFormat::Der => public.to_spki_der(),
        PublicKeyFormat::Jwk => {
            let mut json = serde_json::to_string(&public.to_jwk())?;
            json.push('\n');
            json.into_bytes()
        }
        PublicKeyFormat::Jwks => {
            let jwks = Jwks::from_keys(signers.iter().map(|s| s.public_key()));
            format!("{}\n", jwks.to_json()).into_bytes()
        }
        PublicKeyFormat::Openssh => {
            let mut line = public.to_openssh(signer.key_id().as_str())?;
            line.push('\n');
            line.into_bytes()
        }
    };
    write_stdout(&out)?;
    Ok(Outcome::Done)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FingerprintFormat {
    Snowflake,
    Openssh,
}

#[derive(Args)]
pub struct FingerprintArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Snowflake's RSA_PUBLIC_KEY_FP form, or ssh-keygen -l's form
    #[arg(long, value_enum, default_value = "snowflake")]
    format: FingerprintFormat,
}

pub async fn fingerprint(args: FingerprintArgs) -> anyhow::Result<Outcome> {
    let signer = args.key.open().await?;
    let public = signer.public_key();
    let fp = match args.format {
        FingerprintFormat::Snowflake => public.snowflake_fingerprint(),
        FingerprintFormat::Openssh => public.openssh_fingerprint()?,
    };
    write_stdout(format!("{fp}\n").as_bytes())?;
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// JOSE algorithm name (default: the key's own: RS256, ES256, ES384 or EdDSA)
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// Read the message from FILE instead of standard input
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

pub async fn sign(args: SignArgs) -> anyhow::Result<Outcome> {
    let alg: Option<Algorithm> = args.alg.as_deref().map(str::parse).transpose()?;
    let message = read_input(args.input.as_deref())?;
    let signer = args.key.open().await?;
    let alg = alg.unwrap_or_else(|| signer.default_algorithm());
    let signature = signer.sign(alg, &message).await?;
    write_stdout(format!("{}\n", signature.to_base64url()).as_bytes())?;
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The public key: a public key file (PEM, DER, JWK or an OpenSSH line), or a KEYREF
    /// (a private key file or a Key Vault key) whose public half is used
    #[arg(long, value_name = "KEYREF_OR_PUBLIC_KEY_FILE")]
    public_key: String,
    /// JOSE algorithm name
    #[arg(long, value_name = "ALG")]
    alg: String,
    /// The signature, base64url (ECDSA: raw r||s, or DER as openssl writes it)
    #[arg(long, value_name = "SIG", allow_hyphen_values = true)]
    signature: String,
    /// Read the message from FILE instead of standard input
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let alg: Algorithm = args.alg.parse()?;
    let public = crate::common::public_key_of(&args.public_key).await?;
    let text = args.signature.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| STANDARD.decode(args.signature.trim()))
        .context("the signature is not base64url")?;
    let message = read_input(args.input.as_deref())?;
    let mut result = public.verify(alg, &message, &bytes);
    if result.is_err() && matches!(alg, Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES256K) {
        // openssl writes ECDSA signatures in DER; accept that form too.
        if let Ok(sig) = Signature::from_der(alg, &bytes) {
            result = public.verify(alg, &message, sig.as_bytes());
        }
    }
    match result {
        Ok(()) => {
            eprintln!("remote-signer: signature is valid");
            Ok(Outcome::Done)
        }
        Err(e) if e.is_verification() => Ok(Outcome::Invalid(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GenerateType {
    Ed25519,
    Rsa,
    P256,
    P384,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Key type (RSA key files are 2048 bits; RSA keys on a token 3072 unless --bits says)
    #[arg(long = "type", value_enum, default_value = "ed25519")]
    key_type: GenerateType,
    /// Where to write the unencrypted PKCS#8 PEM key (must not exist; created mode 0600), or
    /// a PKCS#11 URI (pkcs11:token=...;object=<new label>) to create the key on a token
    #[arg(long, value_name = "FILE|PKCS11-URI")]
    out: PathBuf,
    /// RSA key size for keys created on a PKCS#11 token (default 3072)
    #[arg(long)]
    bits: Option<usize>,
}

pub async fn generate(args: GenerateArgs) -> anyhow::Result<Outcome> {
    let key_type = match args.key_type {
        GenerateType::Ed25519 => KeyType::Ed25519,
        GenerateType::Rsa => KeyType::Rsa,
        GenerateType::P256 => KeyType::P256,
        GenerateType::P384 => KeyType::P384,
    };
    #[cfg(feature = "pkcs11")]
    if let Some(uri) = args.out.to_str().filter(|o| o.starts_with("pkcs11:")) {
        use remote_signer::backend::pkcs11::{KeySpec, Pkcs11Signer};
        let spec = match (KeySpec::from_key_type(key_type)?, args.bits) {
            (KeySpec::Rsa(_), Some(bits)) => KeySpec::Rsa(bits),
            (_, Some(_)) => anyhow::bail!("--bits is for RSA keys only"),
            (spec, None) => spec,
        };
        let signer = Pkcs11Signer::builder(uri).generate(spec).await?;
        write_stdout(format!("{}\n", signer.uri()).as_bytes())?;
        return Ok(Outcome::Done);
    }
    anyhow::ensure!(
        args.bits.is_none(),
        "--bits is for keys created on a PKCS#11 token (key files are RSA 2048)"
    );
    let signer = LocalSigner::generate_to_file(key_type, &args.out)?;
    write_stdout(format!("{}\n", signer.key_id()).as_bytes())?;
    Ok(Outcome::Done)
}
