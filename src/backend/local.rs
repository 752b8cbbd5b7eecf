//! Keys in local files, for development and on-prem use.
//!
//! Reads PKCS#8 (plain, or encrypted with PBES2: AES-CBC as OpenSSL 3 writes it, or
//! DES-EDE3-CBC as `openssl pkcs8 -topk8 -v2 des3` writes it), PKCS#1 RSA and SEC1 EC keys, in PEM
//! or DER, and OpenSSH private keys as `ssh-keygen` writes them (plain, or encrypted with
//! bcrypt-pbkdf and a passphrase): RSA 2048 to 4096 bits, EC P-256 and P-384, Ed25519.
//!
//! Like OpenSSH, a key file that group or others may read is refused unless
//! [`LocalKeyOptions::dangerous_allow_readable_file`] says otherwise. The file is read once,
//! as [`crate::file`] reads every input (bounded, never blocking, devices refused), its buffers
//! are zeroized, and the parsed key is zeroized when the signer is dropped. Errors name the
//! file (control characters escaped) and the reason, and give no command-line advice.
//!
//! # What stays in freed memory
//!
//! For EC and Ed25519 keys, nothing: every buffer that held the file, its decoded or
//! decrypted DER, the passphrase or the key is wiped before it is freed. RSA is weaker: the
//! `rsa` crate's big-integer arithmetic (`num-bigint-dig`) frees temporaries without wiping
//! them, some holding the private exponent or the primes (the suite counts about 30 for
//! loading a 2048-bit key and signing once). A process that holds RSA keys locally and must not leave them in freed heap can
//! install a zero-on-free global allocator in its binary, such as
//! [`zeroizing-alloc`](https://docs.rs/zeroizing-alloc):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
//!     zeroizing_alloc::ZeroAlloc(std::alloc::System);
//! ```
//!
//! The test suite checks both statements by copying every freed block and searching it
//! (`tests/zeroize.rs`, `tests/zeroize_alloc.rs`). Keys in Key Vault are never in this
//! process's memory at all.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use pkcs8::DecodePrivateKey;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result, printable_path};
use crate::file::{FileBytes, SmallFile};
use crate::key::{Algorithm, Hash, KeyType, PublicKey, Signature};
use crate::signer::{KeyId, RemoteSigner};

/// The environment variable the command-line tool reads a key passphrase from.
///
/// A variable stays readable in `/proc/PID/environ` by the same user (and root) for the life of
/// the process, whatever the process does later, and is inherited by child processes unless
/// removed: prefer a passphrase file for long-running processes such as an agent.
pub const PASSPHRASE_ENV: &str = "REMOTE_SIGNER_KEY_PASSPHRASE";

/// More PBKDF2 rounds than any tool writes (OpenSSL: 2,048; OWASP advice: 600,000).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// More bcrypt-pbkdf rounds than anyone asks `ssh-keygen -a` for (its default: 16).
const MAX_BCRYPT_ROUNDS: u32 = 1024;
/// scrypt memory cap (128 * N * r * p bytes): 1 GiB.
const MAX_SCRYPT_BYTES: u64 = 1 << 30;

const OID_RSA: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// How to open a local key file.
///
/// ```no_run
/// # fn main() -> remote_signer::Result<()> {
/// use remote_signer::backend::local::LocalKeyOptions;
/// let signer = LocalKeyOptions::new().passphrase_from_env().open("key.p8")?;
/// # Ok(()) }
/// ```
pub struct LocalKeyOptions {
    passphrase: Option<Zeroizing<Vec<u8>>>,
    allow_readable: bool,
    pipe_wait: Duration,
}

impl Default for LocalKeyOptions {
    fn default() -> Self {
        LocalKeyOptions {
            passphrase: None,
            allow_readable: false,
            pipe_wait: crate::file::DEFAULT_WAIT,
        }
    }
}

impl fmt::Debug for LocalKeyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyOptions")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_readable", &self.allow_readable)
            .field("pipe_wait", &self.pipe_wait)
            .finish()
    }
}

impl LocalKeyOptions {
    /// No passphrase; files readable by group or others are refused; a pipe is waited for
    /// 10 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a key or passphrase file that is a pipe (`<(pass show key)`) may take to
    /// deliver in all (default 10 s, [`file::DEFAULT_WAIT`](crate::file::DEFAULT_WAIT)): longer
    /// for a password manager that asks for its own passphrase first. Set it before
    /// [`passphrase_file`](Self::passphrase_file), which reads at once.
    pub fn pipe_wait(mut self, wait: Duration) -> Self {
        self.pipe_wait = wait;
        self
    }

    /// The passphrase of an encrypted key. Kept zeroized.
    pub fn passphrase(mut self, passphrase: impl AsRef<[u8]>) -> Self {
        self.passphrase = Some(Zeroizing::new(passphrase.as_ref().to_vec()));
        self
    }

    /// Takes the passphrase from `REMOTE_SIGNER_KEY_PASSPHRASE` if it is set. The variable is
    /// left in the environment (removing it is only sound while the process has one thread);
    /// see [`PASSPHRASE_ENV`] for why a file is the better home for it.
    pub fn passphrase_from_env(self) -> Self {
        match std::env::var_os(PASSPHRASE_ENV) {
            Some(value) => {
                let value = Zeroizing::new(value.into_encoded_bytes());
                self.passphrase(&*value)
            }
            None => self,
        }
    }

    /// Reads the passphrase from the first line of a file (a trailing newline is dropped). The
    /// file is read as [`SmallFile`] reads it: at most 64 KiB, a pipe (`<(pass show key)`)
    /// waited for at most [`pipe_wait`](Self::pipe_wait), devices and directories refused.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming the file and why it cannot be read ([`ErrorKind::Timeout`] for a
    /// pipe that stays silent).
    pub fn passphrase_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let bytes = SmallFile::new("passphrase file")
            .wait(self.pipe_wait)
            .read(path)?
            .into_bytes();
        let end = bytes
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(bytes.len());
        Ok(self.passphrase(&bytes[..end]))
    }

    /// The public key in a file that holds either a public key (PEM, DER, JWK or an OpenSSH
    /// line) or a private key. The file is read once, as [`SmallFile`] reads it; a private key
    /// is held to the rules of [`open`](Self::open) (permissions, passphrase) and wiped at once.
    ///
    /// # Errors
    /// As [`open`](Self::open); for a public key, [`ErrorKind::InvalidInput`] or
    /// [`ErrorKind::UnsupportedKey`] naming the file and the real reason.
    pub fn public_key(&self, path: impl AsRef<Path>) -> Result<PublicKey> {
        let path = path.as_ref();
        let file = SmallFile::new("key file")
            .kind(ErrorKind::KeyFile)
            .wait(self.pipe_wait)
            .read(path)?;
        if !looks_private(file.bytes()) {
            return PublicKey::from_any(file.bytes()).map_err(|e| about_file(e, path));
        }
        check_private_mode(path, &file, self.allow_readable)?;
        let secret = parse_private_key(file.bytes(), self.passphrase.as_deref().map(|p| &p[..]))
            .map_err(|e| about_file(e, path))?;
        Ok(LocalSigner::new(secret, |_| String::new())?.public)
    }

    /// Accepts key files that group or others can read. Only for mounted secrets that cannot
    /// be made private (a container's secret volume); the default refuses them, as OpenSSH does.
    pub fn dangerous_allow_readable_file(mut self, allow: bool) -> Self {
        self.allow_readable = allow;
        self
    }

    /// Opens a key file.
    ///
    /// # Errors
    /// [`ErrorKind::InsecureKeyFile`] naming the file and its mode; [`ErrorKind::KeyFile`] for a
    /// missing, unreadable or malformed file; [`ErrorKind::Passphrase`] for a missing or wrong
    /// passphrase; [`ErrorKind::UnsupportedKey`] for other key types or sizes.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LocalSigner> {
        let path = path.as_ref();
        let bytes = read_key_file(path, self.allow_readable, self.pipe_wait)?;
        let secret = parse_private_key(&bytes, self.passphrase.as_deref().map(|p| &p[..]))
            .map_err(|e| about_file(e, path))?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        LocalSigner::new(secret, |thumb| {
            format!("file://{}#{thumb}", printable_path(&absolute))
        })
        .map(|s| s.with_path(absolute))
    }
}

/// Reads a key file once, bounded and without blocking ([`SmallFile`]), and refuses it if group
/// or others may read it (unless allowed).
pub(crate) fn read_key_file(
    path: &Path,
    allow_readable: bool,
    pipe_wait: Duration,
) -> Result<Zeroizing<Vec<u8>>> {
    let file = SmallFile::new("key file")
        .kind(ErrorKind::KeyFile)
        .wait(pipe_wait)
        .read(path)?;
    check_private_mode(path, &file, allow_readable)?;
    let bytes = file.into_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::sentence(
            ErrorKind::KeyFile,
            format!("cannot read key file {}: it is empty", printable_path(path)),
        ));
    }
    Ok(bytes)
}

fn check_private_mode(path: &Path, file: &FileBytes, allow_readable: bool) -> Result<()> {
    if let Some(mode) = file.mode()
        && mode & 0o077 != 0
        && !allow_readable
    {
        let shown = printable_path(path);
        return Err(Error::sentence(
            ErrorKind::InsecureKeyFile,
            format!(
                "key file {shown} is readable by group or others (mode {mode:04o}): run \
                     `chmod 600 {shown}`, {ALLOW_READABLE_REMEDY}"
            ),
        ));
    }
    Ok(())
}

/// True when `bytes` hold a private key container (PEM label or DER structure), so that a
/// public-key reader applies the private-key rules instead of reporting "not a public key".
fn looks_private(bytes: &[u8]) -> bool {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.contains("-----BEGIN ")
    {
        return text.contains("PRIVATE KEY-----");
    }
    pkcs8::PrivateKeyInfo::try_from(bytes).is_ok()
        || pkcs8::EncryptedPrivateKeyInfo::try_from(bytes).is_ok()
        || pkcs1::RsaPrivateKey::try_from(bytes).is_ok()
        || sec1::EcPrivateKey::try_from(bytes).is_ok()
}

/// The library's remedy for a readable key file; the command-line tool names its own flag.
const ALLOW_READABLE_REMEDY: &str =
    "or for a mounted secret allow it with `LocalKeyOptions::dangerous_allow_readable_file(true)`";

/// Names the file in a parse error, which knows none.
fn about_file(error: Error, path: &Path) -> Error {
    let shown = printable_path(path);
    let what = match error.kind() {
        ErrorKind::KeyFile => format!("cannot read key file {shown}"),
        ErrorKind::Passphrase => format!("cannot decrypt key file {shown}"),
        ErrorKind::UnsupportedKey => format!("unsupported key in {shown}"),
        ErrorKind::InvalidInput => format!("cannot read key file {shown}"),
        _ => return error.prefixed(shown),
    };
    match error.context_text() {
        Some(context) => Error::sentence(error.kind(), format!("{what}: {context}")),
        None => Error::sentence(error.kind(), what),
    }
}

/// A private key in memory. Each variant's type zeroizes itself on drop.
enum SecretKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

fn key_file_error(what: &str) -> Error {
    Error::with_context(ErrorKind::KeyFile, what.to_string())
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::with_context(ErrorKind::UnsupportedKey, what)
}

/// Parses a private key in any supported container.
fn parse_private_key(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<SecretKey> {
    if let Some((label, der)) = find_private_pem(bytes)? {
        return match label.as_str() {
            "PRIVATE KEY" => parse_pkcs8(&der),
            "ENCRYPTED PRIVATE KEY" => parse_encrypted_pkcs8(&der, passphrase),
            "RSA PRIVATE KEY" => parse_pkcs1(&der),
            "EC PRIVATE KEY" => parse_sec1(&der),
            "OPENSSH PRIVATE KEY" => parse_openssh(&der, passphrase),
            _ => Err(key_file_error("PEM block is not a private key")),
        };
    }
    // DER: the structures are distinct enough that the first that parses is the one.
    if pkcs8::PrivateKeyInfo::try_from(bytes).is_ok() {
        parse_pkcs8(bytes)
    } else if pkcs8::EncryptedPrivateKeyInfo::try_from(bytes).is_ok() {
        parse_encrypted_pkcs8(bytes, passphrase)
    } else if pkcs1::RsaPrivateKey::try_from(bytes).is_ok() {
        parse_pkcs1(bytes)
    } else if sec1::EcPrivateKey::try_from(bytes).is_ok() {
        parse_sec1(bytes)
    } else {
        Err(key_file_error(
            "not a PEM or DER private key (PKCS#8, PKCS#1 or SEC1)",
        ))
    }
}

/// Finds the first PEM block whose label names a private key (OpenSSL may put an
/// `EC PARAMETERS` block first). `Ok(None)` if the input is not PEM.
fn find_private_pem(bytes: &[u8]) -> Result<Option<(String, Zeroizing<Vec<u8>>)>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    if !text.contains("-----BEGIN ") {
        return Ok(None);
    }
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .ok_or_else(|| key_file_error("malformed PEM"))?;
        let label = &block[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| key_file_error("truncated PEM (no END line)"))?;
        let whole = &block[..end + end_marker.len()];
        if label.contains("PRIVATE KEY") {
            if whole.contains("Proc-Type:") {
                return Err(unsupported(
                    "legacy OpenSSL-encrypted PEM; convert with \
                     `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
                ));
            }
            let normalized = Zeroizing::new(whole.replace('\r', ""));
            // OpenSSH wraps its base64 at 70 columns, RFC 7468 (and some SSH tools) at 64.
            let mut decoder = pem_rfc7468::Decoder::new_wrapped(normalized.as_bytes(), 70)
                .or_else(|_| pem_rfc7468::Decoder::new_wrapped(normalized.as_bytes(), 64))
                .map_err(|_| key_file_error("malformed PEM"))?;
            let label = decoder.type_label().to_string();
            // Sized up front, so the buffer never reallocates with key bytes in it.
            let mut der = Zeroizing::new(Vec::with_capacity(decoder.remaining_len()));
            decoder
                .decode_to_end(&mut der)
                .map_err(|_| key_file_error("malformed PEM"))?;
            return Ok(Some((label, der)));
        }
        rest = &block[end + end_marker.len()..];
    }
    Err(key_file_error("no private key in PEM input"))
}

fn parse_pkcs8(der: &[u8]) -> Result<SecretKey> {
    let info =
        pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| key_file_error("malformed PKCS#8 key"))?;
    let malformed = |_| key_file_error("malformed PKCS#8 key");
    match info.algorithm.oid {
        OID_RSA => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(malformed)?;
            rsa_key(key)
        }
        OID_EC => match info.algorithm.parameters_oid().ok() {
            Some(OID_P256) => Ok(SecretKey::P256(
                p256::SecretKey::from_pkcs8_der(der)
                    .map_err(malformed)?
                    .into(),
            )),
            Some(OID_P384) => Ok(SecretKey::P384(
                p384::SecretKey::from_pkcs8_der(der)
                    .map_err(malformed)?
                    .into(),
            )),
            _ => Err(unsupported("EC curve (supported: P-256, P-384)")),
        },
        OID_ED25519 => Ok(SecretKey::Ed25519(Box::new(
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(malformed)?,
        ))),
        _ => Err(unsupported(
            "key algorithm (supported: RSA, EC P-256/P-384, Ed25519)",
        )),
    }
}

fn parse_encrypted_pkcs8(der: &[u8], passphrase: Option<&[u8]>) -> Result<SecretKey> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|_| key_file_error("malformed encrypted PKCS#8 key"))?;
    let Some(passphrase) = passphrase else {
        return Err(no_passphrase());
    };
    let Some(pbes2) = info.encryption_algorithm.pbes2() else {
        return Err(unsupported(
            "PBES1 key encryption; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
        ));
    };
    // A crafted file could ask for billions of KDF rounds and hang the process; refuse first.
    let affordable = match &pbes2.kdf {
        pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(p) => p.iteration_count <= MAX_PBKDF2_ITERATIONS,
        pkcs8::pkcs5::pbes2::Kdf::Scrypt(p) => {
            let memory = 128u64
                .saturating_mul(p.cost_parameter)
                .saturating_mul(u64::from(p.block_size))
                .saturating_mul(u64::from(p.parallelization.max(1)));
            memory <= MAX_SCRYPT_BYTES
        }
        _ => true,
    };
    if !affordable {
        return Err(unsupported(
            "key encryption parameters ask for more work than any real key file",
        ));
    }
    let wrong = || Error::with_context(ErrorKind::Passphrase, "wrong passphrase");
    // A wrong passphrase usually fails the padding check; with 3DES it can pass by chance, and
    // then the decrypted bytes do not parse.
    let doc = info.decrypt(passphrase).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }) => {
            unsupported("key encryption algorithm (supported: PBES2 with AES-CBC or DES-EDE3-CBC)")
        }
        _ => wrong(),
    })?;
    parse_pkcs8(doc.as_bytes()).map_err(|e| match e.kind() {
        ErrorKind::KeyFile => wrong(),
        _ => e,
    })
}

fn no_passphrase() -> Error {
    Error::with_context(
        ErrorKind::Passphrase,
        "the key is encrypted and no passphrase was given",
    )
}

/// An OpenSSH private key (`ssh-keygen`'s default format), plain or encrypted with bcrypt-pbkdf.
fn parse_openssh(der: &[u8], passphrase: Option<&[u8]>) -> Result<SecretKey> {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    let Ok(key) = ssh_key::PrivateKey::from_bytes(der) else {
        return short_ecdsa_scalar(der, None)
            .unwrap_or_else(|| Err(key_file_error("malformed OpenSSH private key")));
    };
    let key = if key.is_encrypted() {
        let Some(passphrase) = passphrase else {
            return Err(no_passphrase());
        };
        // A crafted file could ask for billions of rounds and hang the process; refuse first.
        if let ssh_key::Kdf::Bcrypt { rounds, .. } = key.kdf()
            && *rounds > MAX_BCRYPT_ROUNDS
        {
            return Err(unsupported(
                "key encryption parameters ask for more work than any real key file",
            ));
        }
        match key.decrypt(passphrase) {
            Ok(key) => key,
            Err(ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. }) => {
                return Err(unsupported(
                    "OpenSSH key encryption (supported: the ciphers and KDF ssh-keygen writes)",
                ));
            }
            // The check integers differ, or the decrypted bytes do not parse.
            Err(_) => {
                return short_ecdsa_scalar(der, Some((&key, passphrase))).unwrap_or_else(|| {
                    Err(Error::with_context(
                        ErrorKind::Passphrase,
                        "wrong passphrase",
                    ))
                });
            }
        }
    } else {
        key
    };
    let malformed = |_| key_file_error("malformed OpenSSH private key");
    match key.key_data() {
        KeypairData::Ed25519(pair) => Ok(SecretKey::Ed25519(Box::new(
            ed25519_dalek::SigningKey::from(&pair.private),
        ))),
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => Ok(SecretKey::P256(
            p256::ecdsa::SigningKey::from_slice(private.as_slice()).map_err(malformed)?,
        )),
        KeypairData::Ecdsa(EcdsaKeypair::NistP384 { private, .. }) => Ok(SecretKey::P384(
            p384::ecdsa::SigningKey::from_slice(private.as_slice()).map_err(malformed)?,
        )),
        KeypairData::Ecdsa(EcdsaKeypair::NistP521 { .. }) => {
            Err(unsupported("EC curve P-521 (supported: P-256, P-384)"))
        }
        KeypairData::Rsa(pair) => {
            // Built here rather than through ssh-key's conversion, which passes `p` twice as
            // the primes in 0.6.7.
            // Refused before any arithmetic, which is slow on a crafted huge modulus.
            let modulus_bits = pair.public.n.as_positive_bytes().map_or(0, |n| n.len() * 8);
            if modulus_bits > 4096 {
                return Err(unsupported(format!(
                    "RSA key of about {modulus_bits} bits (supported: 2048 to 4096)"
                )));
            }
            let uint = |m: &ssh_key::Mpint| {
                m.as_positive_bytes()
                    .map(rsa::BigUint::from_bytes_be)
                    .ok_or_else(|| key_file_error("malformed OpenSSH RSA key"))
            };
            let key = rsa::RsaPrivateKey::from_components(
                uint(&pair.public.n)?,
                uint(&pair.public.e)?,
                uint(&pair.private.d)?,
                vec![uint(&pair.private.p)?, uint(&pair.private.q)?],
            )
            .map_err(|_| key_file_error("malformed OpenSSH RSA key"))?;
            rsa_key(key)
        }
        KeypairData::SkEd25519(_) | KeypairData::SkEcdsaSha2NistP256(_) => Err(unsupported(
            "security-key (sk-) key: its private half stays on the token",
        )),
        _ => Err(unsupported(
            "OpenSSH key type (supported: Ed25519, ECDSA P-256/P-384, RSA)",
        )),
    }
}

/// An OpenSSH ECDSA key whose private scalar is shorter than its field, which ssh-key 0.6
/// refuses: RFC 4251 mpints drop leading zero bytes, so about one key in 256 that ssh-keygen
/// writes has one. Read here from the file's `openssh-key-v1` container (OpenSSH's
/// `PROTOCOL.key`) through ssh-encoding, decrypted with ssh-key's KDF and cipher when
/// `encrypted` is the parsed file and its passphrase. `None` for anything else (another key
/// type, a scalar of full length, a cipher with an authentication tag, bytes that do not
/// parse), so the caller's error stands.
fn short_ecdsa_scalar(
    der: &[u8],
    encrypted: Option<(&ssh_key::PrivateKey, &[u8])>,
) -> Option<Result<SecretKey>> {
    use ssh_encoding::{Decode, Reader};
    let mut container = der;
    let mut magic = [0u8; 15];
    container.read(&mut magic).ok()?;
    if &magic != b"openssh-key-v1\0" {
        return None;
    }
    let cipher = String::decode(&mut container).ok()?;
    if encrypted.is_none() != (cipher == "none") {
        return None;
    }
    let _kdf = String::decode(&mut container).ok()?;
    let _kdf_options = Vec::<u8>::decode(&mut container).ok()?;
    if u32::decode(&mut container).ok()? != 1 {
        return None; // one key per file, as ssh-keygen writes
    }
    let _public = Vec::<u8>::decode(&mut container).ok()?;
    let mut section = Zeroizing::new(Vec::<u8>::decode(&mut container).ok()?);
    if let Some((file, passphrase)) = encrypted {
        let (key, iv) = file
            .kdf()
            .derive_key_and_iv(file.cipher(), passphrase)
            .ok()?;
        let (key, iv) = (Zeroizing::new(key), Zeroizing::new(iv));
        file.cipher().decrypt(&key, &iv, &mut section, None).ok()?;
    }
    let mut private = &section[..];
    let check = (
        u32::decode(&mut private).ok()?,
        u32::decode(&mut private).ok()?,
    );
    if check.0 != check.1 {
        return encrypted.is_some().then(|| {
            Err(Error::with_context(
                ErrorKind::Passphrase,
                "wrong passphrase",
            ))
        });
    }
    let size = match String::decode(&mut private).ok()?.as_str() {
        "ecdsa-sha2-nistp256" => 32,
        "ecdsa-sha2-nistp384" => 48,
        _ => return None,
    };
    let _curve = String::decode(&mut private).ok()?;
    let point = Vec::<u8>::decode(&mut private).ok()?;
    let len = usize::try_from(u32::decode(&mut private).ok()?).ok()?;
    if len == 0 || len >= size {
        return None;
    }
    // Big-endian: the missing leading bytes are zeros.
    let mut scalar = Zeroizing::new([0u8; 48]);
    let scalar = &mut scalar[..size];
    private.read(&mut scalar[size - len..]).ok()?;
    if scalar[size - len] & 0x80 != 0 {
        return None; // a negative mpint
    }
    let malformed = || key_file_error("malformed OpenSSH private key");
    let (key, public) = if size == 32 {
        let key = p256::ecdsa::SigningKey::from_slice(scalar).ok()?;
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        (SecretKey::P256(key), public)
    } else {
        let key = p384::ecdsa::SigningKey::from_slice(scalar).ok()?;
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        (SecretKey::P384(key), public)
    };
    Some(if public == point {
        Ok(key)
    } else {
        Err(malformed())
    })
}

fn parse_pkcs1(der: &[u8]) -> Result<SecretKey> {
    use pkcs1::DecodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs1_der(der)
        .map_err(|_| key_file_error("malformed PKCS#1 RSA key"))?;
    rsa_key(key)
}

fn parse_sec1(der: &[u8]) -> Result<SecretKey> {
    let key =
        sec1::EcPrivateKey::try_from(der).map_err(|_| key_file_error("malformed SEC1 EC key"))?;
    let malformed = |_| key_file_error("malformed SEC1 EC key");
    match key.parameters.and_then(|p| p.named_curve()) {
        Some(OID_P256) => Ok(SecretKey::P256(
            p256::SecretKey::from_sec1_der(der)
                .map_err(malformed)?
                .into(),
        )),
        Some(OID_P384) => Ok(SecretKey::P384(
            p384::SecretKey::from_sec1_der(der)
                .map_err(malformed)?
                .into(),
        )),
        Some(_) => Err(unsupported("EC curve (supported: P-256, P-384)")),
        None => Err(key_file_error("SEC1 EC key does not name its curve")),
    }
}

fn rsa_key(key: rsa::RsaPrivateKey) -> Result<SecretKey> {
    use rsa::traits::PublicKeyParts;
    let bits = key.n().bits();
    if !(2048..=4096).contains(&bits) {
        return Err(unsupported(format!(
            "RSA key of {bits} bits (supported: 2048 to 4096)"
        )));
    }
    // `rsa` validated the key's consistency when it built it (`from_components`).
    Ok(SecretKey::Rsa(Box::new(key)))
}

/// A signer whose key is in this process's memory, loaded from a file or generated.
///
/// Not `Clone`; share it as `Arc<dyn RemoteSigner>`. Its `Debug` shows the key id and type
/// only.
pub struct LocalSigner {
    key_id: KeyId,
    public: PublicKey,
    secret: SecretKey,
    path: Option<PathBuf>,
}

impl LocalSigner {
    fn new(secret: SecretKey, key_id: impl FnOnce(&str) -> String) -> Result<Self> {
        use crate::key::public::Inner;
        let inner = match &secret {
            SecretKey::Rsa(k) => Inner::Rsa(k.to_public_key()),
            SecretKey::P256(k) => Inner::P256((*k.verifying_key()).into()),
            SecretKey::P384(k) => Inner::P384((*k.verifying_key()).into()),
            SecretKey::Ed25519(k) => Inner::Ed25519(k.verifying_key()),
        };
        let public = PublicKey::from_inner(inner)?;
        let key_id = KeyId::new(key_id(&public.jwk_thumbprint()));
        Ok(LocalSigner {
            key_id,
            public,
            secret,
            path: None,
        })
    }

    fn with_path(mut self, path: PathBuf) -> Self {
        self.path = Some(path);
        self
    }

    /// Opens an unencrypted key file with the default (private-file) checks.
    ///
    /// # Errors
    /// As [`LocalKeyOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        LocalKeyOptions::new().open(path)
    }

    /// Parses a key held in memory (PEM or DER), for keys that arrive by other means than a
    /// file. The key id is `memory:` followed by the key's thumbprint.
    ///
    /// # Errors
    /// As [`LocalKeyOptions::open`], without the file checks.
    pub fn from_bytes(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        Self::new(parse_private_key(bytes, passphrase)?, |t| {
            format!("memory:{t}")
        })
    }

    /// Generates a fresh key in memory (RSA keys are 2048 bits). The key id is `memory:`
    /// followed by the key's thumbprint.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] for P-256K, which the local backend does not hold.
    pub fn generate(key_type: KeyType) -> Result<Self> {
        let secret = match key_type {
            KeyType::Rsa => SecretKey::Rsa(Box::new(
                rsa::RsaPrivateKey::new(&mut OsRng, 2048)
                    .map_err(|_| Error::new(ErrorKind::Signing))?,
            )),
            KeyType::P256 => SecretKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            KeyType::P384 => SecretKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            KeyType::Ed25519 => {
                SecretKey::Ed25519(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)))
            }
            other => {
                return Err(unsupported(format!(
                    "{other} keys cannot be generated locally"
                )));
            }
        };
        Self::new(secret, |t| format!("memory:{t}"))
    }

    /// Generates a fresh key and writes it as an unencrypted PKCS#8 PEM file created with mode
    /// 0600 (the file must not exist yet). The private key goes to the file only; nothing
    /// returns it. Returns the signer as if the file had been opened.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] if the file exists or cannot be written; as [`LocalSigner::generate`].
    pub fn generate_to_file(key_type: KeyType, path: impl AsRef<Path>) -> Result<Self> {
        use pkcs8::EncodePrivateKey;
        let path = path.as_ref();
        let generated = Self::generate(key_type)?;
        let pem = match &generated.secret {
            SecretKey::Rsa(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
            SecretKey::P256(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
            SecretKey::P384(k) => k.to_pkcs8_pem(pkcs8::LineEnding::LF),
            // PKCS#8 v1, without the optional public key: OpenSSL 3.0 (Debian 12) cannot read
            // the v2 form that `SigningKey::to_pkcs8_pem` writes.
            SecretKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(pkcs8::LineEnding::LF),
        }
        .map_err(|_| Error::new(ErrorKind::Signing))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let io = |e: std::io::Error| {
            Error::sentence(
                ErrorKind::Io,
                format!(
                    "cannot write key file {}: {}",
                    printable_path(path),
                    crate::file::io_reason(&e)
                ),
            )
        };
        let mut file = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let key_id = KeyId::new(format!(
            "file://{}#{}",
            printable_path(&absolute),
            generated.public.jwk_thumbprint()
        ));
        Ok(LocalSigner {
            key_id,
            path: Some(absolute),
            ..generated
        })
    }

    /// The file the key came from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Signs synchronously (local keys need no I/O). RSA uses blinding; ECDSA is deterministic
    /// (RFC 6979); PSS salts are as long as the hash.
    ///
    /// # Errors
    /// [`ErrorKind::Algorithm`] if `algorithm` does not fit the key.
    pub fn sign_blocking(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        use signature::Signer;
        algorithm.check_key_type(self.public.key_type())?;
        let failed = |_| Error::new(ErrorKind::Signing);
        let bytes = match &self.secret {
            SecretKey::Rsa(key) => {
                let hash = algorithm.hash().expect("RSA algorithms hash");
                let digest = hash.digest(message);
                let pss = matches!(
                    algorithm,
                    Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
                );
                match (pss, hash) {
                    (false, Hash::Sha256) => key.sign_with_rng(
                        &mut OsRng,
                        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                        &digest,
                    ),
                    (false, Hash::Sha384) => key.sign_with_rng(
                        &mut OsRng,
                        rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                        &digest,
                    ),
                    (false, Hash::Sha512) => key.sign_with_rng(
                        &mut OsRng,
                        rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                        &digest,
                    ),
                    (true, Hash::Sha256) => {
                        key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha256>(), &digest)
                    }
                    (true, Hash::Sha384) => {
                        key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha384>(), &digest)
                    }
                    (true, Hash::Sha512) => {
                        key.sign_with_rng(&mut OsRng, rsa::Pss::new::<sha2::Sha512>(), &digest)
                    }
                }
                .map_err(failed)?
            }
            SecretKey::P256(key) => {
                let sig: p256::ecdsa::Signature = key
                    .try_sign(message)
                    .map_err(|_| Error::new(ErrorKind::Signing))?;
                sig.to_vec()
            }
            SecretKey::P384(key) => {
                let sig: p384::ecdsa::Signature = key
                    .try_sign(message)
                    .map_err(|_| Error::new(ErrorKind::Signing))?;
                sig.to_vec()
            }
            SecretKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        };
        Ok(Signature::new(algorithm, bytes))
    }
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("key_id", &self.key_id)
            .field("key_type", &self.public.key_type())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RemoteSigner for LocalSigner {
    fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    async fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Signature> {
        self.sign_blocking(algorithm, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_key_signs_and_verifies_with_every_algorithm() {
        for key_type in [KeyType::Rsa, KeyType::P256, KeyType::P384, KeyType::Ed25519] {
            let signer = LocalSigner::generate(key_type).unwrap();
            for &alg in key_type.algorithms() {
                let sig = signer.sign_blocking(alg, b"message").unwrap();
                signer
                    .public_key()
                    .verify(alg, b"message", sig.as_bytes())
                    .unwrap();
                assert!(
                    signer
                        .public_key()
                        .verify(alg, b"messagf", sig.as_bytes())
                        .is_err()
                );
            }
        }
    }

    #[test]
    fn wrong_family_is_refused() {
        let signer = LocalSigner::generate(KeyType::Ed25519).unwrap();
        let err = signer.sign_blocking(Algorithm::RS256, b"m").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Algorithm);
    }
}
