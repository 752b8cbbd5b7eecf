//! One string names a key everywhere: a path or `file:` URI to a key file, (with the `azure`
//! feature) a Key Vault key URL, or (with the `aws` feature) an AWS KMS key or alias ARN.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::backend::local::LocalKeyOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::signer::RemoteSigner;

/// A parsed key reference. Its `Display` is safe for messages: control characters in a path
/// are escaped, and a Key Vault URL with user information or control characters is refused
/// when parsed, so it never reaches a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRef {
    /// A key file (PEM or DER).
    File(PathBuf),
    /// An Azure Key Vault or Managed HSM key URL,
    /// `https://<vault>.vault.azure.net/keys/<name>[/<version>]`.
    AzureKeyVault(String),
    /// An AWS KMS key or alias ARN, `arn:aws:kms:<region>:<account>:key/<key-id>` or
    /// `arn:aws:kms:<region>:<account>:alias/<name>` (also `aws-cn`, `aws-us-gov`).
    AwsKms(String),
    /// A key on a PKCS#11 token or HSM, named by an RFC 7512 URI (`pkcs11:token=...;object=...`).
    Pkcs11(String),
}

impl FromStr for KeyRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::with_context(ErrorKind::KeyRef, why.to_string());
        if s.is_empty() {
            return Err(bad("empty key reference"));
        }
        if let Some(rest) = s.strip_prefix("file:") {
            // file:///abs/path, file://localhost/abs/path or file:relative/path
            let path = if let Some(authority_path) = rest.strip_prefix("//") {
                let slash = authority_path
                    .find('/')
                    .ok_or_else(|| bad("file: URI without a path"))?;
                let host = &authority_path[..slash];
                if !host.is_empty() && host != "localhost" {
                    return Err(bad("file: URI names a remote host"));
                }
                &authority_path[slash..]
            } else {
                rest
            };
            if path.is_empty() {
                return Err(bad("file: URI without a path"));
            }
            return Ok(KeyRef::File(PathBuf::from(percent_decode(path)?)));
        }
        if s.starts_with("pkcs11:") {
            #[cfg(feature = "pkcs11")]
            crate::backend::pkcs11::Pkcs11Uri::parse(s)?;
            return Ok(KeyRef::Pkcs11(s.to_string()));
        }
        if s.starts_with("arn:") {
            return Ok(KeyRef::AwsKms(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("https://") {
            // Refused here, before any message could echo them: Key Vault credentials come
            // from the environment, never from the URL.
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                return Err(bad(
                    "a Key Vault URL must not carry a user name or password (credentials come \
                     from the environment); remove the part before `@`",
                ));
            }
            if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(bad(
                    "a Key Vault URL must not contain spaces or control characters",
                ));
            }
            return Ok(KeyRef::AzureKeyVault(s.to_string()));
        }
        if s.starts_with("http://") {
            return Err(bad("Key Vault URLs must use https"));
        }
        Ok(KeyRef::File(PathBuf::from(s)))
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::with_context(ErrorKind::KeyRef, "bad %-escape in file: URI")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::with_context(ErrorKind::KeyRef, "file: URI is not UTF-8"))
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(path) => f.write_str(&crate::error::printable_path(path)),
            KeyRef::AzureKeyVault(url) => f.write_str(url),
            KeyRef::AwsKms(arn) => f.write_str(arn),
            KeyRef::Pkcs11(uri) => f.write_str(uri),
        }
    }
}

/// Options for opening any [`KeyRef`].
#[derive(Debug)]
pub struct OpenOptions {
    local: LocalKeyOptions,
    verify_challenge_resource: bool,
    #[cfg(feature = "azure")]
    azure_retry: Option<crate::backend::azure::RetryPolicy>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            local: LocalKeyOptions::default(),
            verify_challenge_resource: true,
            #[cfg(feature = "azure")]
            azure_retry: None,
        }
    }
}

impl OpenOptions {
    /// Defaults: no passphrase, private key files only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options for key files.
    pub fn local(mut self, local: LocalKeyOptions) -> Self {
        self.local = local;
        self
    }

    /// For Key Vault keys: whether the resource in the vault's authentication challenge must
    /// match the vault's domain (default `true`). Switch off only for emulators and private
    /// endpoints. Ignored for key files.
    pub fn verify_challenge_resource(mut self, verify: bool) -> Self {
        self.verify_challenge_resource = verify;
        self
    }

    /// For Key Vault keys: retries and time bounds (default
    /// [`RetryPolicy::default`](crate::backend::azure::RetryPolicy::default)).
    #[cfg(feature = "azure")]
    pub fn azure_retry(mut self, retry: crate::backend::azure::RetryPolicy) -> Self {
        self.azure_retry = Some(retry);
        self
    }
}

impl KeyRef {
    /// Opens the key as a signer.
    ///
    /// # Errors
    /// The backend's errors; [`ErrorKind::Config`] for a Key Vault URL when the crate was
    /// built without the `azure` feature, or a KMS ARN without the `aws` feature.
    pub async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn RemoteSigner>> {
        match self {
            KeyRef::File(path) => Ok(Arc::new(options.local.open(path)?)),
            #[cfg(feature = "azure")]
            KeyRef::AzureKeyVault(url) => {
                let mut builder = crate::backend::azure::KeyVaultSigner::builder(url)
                    .verify_challenge_resource(options.verify_challenge_resource);
                if let Some(retry) = options.azure_retry {
                    builder = builder.retry(retry);
                }
                Ok(Arc::new(builder.build().await?))
            }
            #[cfg(feature = "pkcs11")]
            KeyRef::Pkcs11(uri) => Ok(Arc::new(
                crate::backend::pkcs11::Pkcs11Signer::open(uri).await?,
            )),
            #[cfg(not(feature = "pkcs11"))]
            KeyRef::Pkcs11(_) => Err(Error::with_context(
                ErrorKind::Config,
                "PKCS#11 keys need the `pkcs11` feature",
            )),
            #[cfg(not(feature = "azure"))]
            KeyRef::AzureKeyVault(_) => {
                let _ = options.verify_challenge_resource;
                Err(Error::with_context(
                    ErrorKind::Config,
                    "Key Vault keys need the `azure` feature",
                ))
            }
            #[cfg(feature = "aws")]
            KeyRef::AwsKms(arn) => Ok(Arc::new(
                crate::backend::aws::KmsSigner::builder(arn).build().await?,
            )),
            #[cfg(not(feature = "aws"))]
            KeyRef::AwsKms(_) => Err(Error::with_context(
                ErrorKind::Config,
                "AWS KMS keys need the `aws` feature",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_uris() {
        assert_eq!(
            "file:///tmp/a%20b.pem".parse::<KeyRef>().unwrap(),
            KeyRef::File("/tmp/a b.pem".into())
        );
        assert_eq!(
            "file:key.pem".parse::<KeyRef>().unwrap(),
            KeyRef::File("key.pem".into())
        );
        assert_eq!(
            "k.der".parse::<KeyRef>().unwrap(),
            KeyRef::File("k.der".into())
        );
        assert!("file://evil.example/k".parse::<KeyRef>().is_err());
        assert!("http://v.vault.azure.net/keys/k".parse::<KeyRef>().is_err());
        assert!(matches!(
            "https://v.vault.azure.net/keys/k"
                .parse::<KeyRef>()
                .unwrap(),
            KeyRef::AzureKeyVault(_)
        ));
        assert!(matches!(
            "arn:aws:kms:us-east-1:111122223333:alias/a"
                .parse::<KeyRef>()
                .unwrap(),
            KeyRef::AwsKms(_)
        ));
    }

    #[test]
    fn user_information_in_a_url_is_refused_without_being_echoed() {
        for url in [
            "https://user:s3cr3t-pw@v.vault.azure.net/keys/k",
            "https://s3cr3t-pw@v.vault.azure.net/keys/k",
        ] {
            let err = url.parse::<KeyRef>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyRef);
            let text = format!("{err} {err:?}");
            assert!(!text.contains("s3cr3t-pw"), "{text}");
            assert!(text.contains("user name or password"), "{text}");
        }
        // An `@` in the path is not user information.
        assert!(
            "https://v.vault.azure.net/keys/k@1"
                .parse::<KeyRef>()
                .is_ok()
        );
        let err = "https://v.vault.azure.net/keys/k\u{1b}[2J"
            .parse::<KeyRef>()
            .unwrap_err();
        assert!(!err.to_string().contains('\u{1b}'));
    }

    #[test]
    fn a_path_with_control_characters_displays_escaped() {
        let key: KeyRef = "dir/a\nb\u{7}.pem".parse().unwrap();
        assert_eq!(key.to_string(), "dir/a\\nb\\u{7}.pem");
    }
}
