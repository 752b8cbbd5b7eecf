//! `open(keyref)` and the `Key` it returns: any backend behind one class.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use remote_signer::backend::local::LocalKeyOptions;
use remote_signer::{Algorithm, KeyRef, KeyType, OpenOptions, RemoteSigner};
use zeroize::Zeroizing;

use crate::errors::{invalid_input, to_py};
use crate::runtime::{Origin, wait};

/// A key that signs where it lives (a key file, Azure Key Vault, ...). The private key is
/// never exposed.
#[pyclass(frozen, module = "remote_signer")]
pub struct Key {
    signer: Arc<dyn RemoteSigner>,
    origin: Origin,
}

impl Key {
    /// The crate's signer.
    pub fn signer(&self) -> &Arc<dyn RemoteSigner> {
        &self.signer
    }

    /// The crate's signer, for an object made from this key in this process.
    ///
    /// # Errors
    /// `ConfigError` if the key was opened before this process forked.
    pub fn signer_here(&self) -> PyResult<Arc<dyn RemoteSigner>> {
        self.origin.check()?;
        Ok(self.signer.clone())
    }

    fn algorithm(&self, alg: Option<String>) -> PyResult<Algorithm> {
        match alg {
            None => Ok(self.signer.default_algorithm()),
            Some(name) => name.parse().map_err(to_py),
        }
    }
}

/// The key type's name: `RSA`, or the JOSE curve name.
fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Rsa => "RSA",
        KeyType::P256 => "P-256",
        KeyType::P384 => "P-384",
        KeyType::K256 => "secp256k1",
        KeyType::Ed25519 => "Ed25519",
        _ => "unknown",
    }
}

#[pymethods]
impl Key {
    /// The exact key version that signs (a Key Vault key URL with its version, or a `file:`
    /// URI with the key's thumbprint).
    #[getter]
    fn key_id(&self) -> &str {
        self.signer.key_id().as_str()
    }

    /// `"RSA"`, `"P-256"`, `"P-384"`, `"secp256k1"` or `"Ed25519"`.
    #[getter]
    fn key_type(&self) -> &'static str {
        key_type_name(self.signer.key_type())
    }

    /// The key size in bits (the RSA modulus, or the curve's size).
    #[getter]
    fn key_size(&self) -> usize {
        match self.signer.key_type() {
            KeyType::Rsa => self.signer.public_key().rsa_bits().unwrap_or(0),
            KeyType::P256 | KeyType::K256 | KeyType::Ed25519 => 256,
            KeyType::P384 => 384,
            _ => 0,
        }
    }

    /// The algorithm `sign` uses when none is named: RS256, ES256, ES384, ES256K or EdDSA.
    #[getter]
    fn default_algorithm(&self) -> &'static str {
        self.signer.default_algorithm().as_str()
    }

    /// Every JOSE algorithm this key signs with.
    #[getter]
    fn algorithms(&self) -> Vec<&'static str> {
        self.signer
            .key_type()
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect()
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    fn public_key_pem(&self) -> String {
        self.signer.public_key().to_pem()
    }

    /// The public key as DER (SubjectPublicKeyInfo).
    fn public_key_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.signer.public_key().to_spki_der())
    }

    /// The public key as a JWK (a dict).
    fn public_key_jwk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(&self.signer.public_key().to_jwk())
            .map_err(|_| invalid_input("cannot encode the JWK"))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Signs `data` (the whole message; it is hashed here) with `alg`, by default the key's
    /// default algorithm. Returns the signature in the JOSE form: the PKCS#1 block for RSA, raw
    /// `r || s` for ECDSA. The GIL is released while the key service answers. It signs any
    /// bytes: give a key used this way no other protocol.
    #[pyo3(signature = (data, alg = None))]
    fn sign<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        alg: Option<String>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let algorithm = self.algorithm(alg)?;
        let signer = self.signer.clone();
        let signature = wait(py, self.origin, async move {
            signer.sign(algorithm, data).await
        })?;
        Ok(PyBytes::new(py, signature.as_bytes()))
    }

    /// Checks `signature` (JOSE form) over `data` with the public key; raises
    /// `VerificationError` if it does not verify.
    #[pyo3(signature = (data, signature, alg = None))]
    fn verify(&self, data: &[u8], signature: &[u8], alg: Option<String>) -> PyResult<()> {
        let algorithm = self.algorithm(alg)?;
        self.signer
            .public_key()
            .verify(algorithm, data, signature)
            .map_err(to_py)
    }

    /// This key as a `cryptography` private key object (`RSAPrivateKey`,
    /// `EllipticCurvePrivateKey` or `Ed25519PrivateKey`) whose `sign` goes through this key.
    fn as_cryptography_key<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("remote_signer._cryptography")?
            .call_method1("adapter", (slf,))
    }

    fn __repr__(&self) -> String {
        format!(
            "Key(key_id={:?}, key_type={:?})",
            self.signer.key_id().as_str(),
            self.key_type()
        )
    }
}

/// Opens a key reference as the CLI does: a path or `file:` URI to a key file, or a Key Vault
/// key URL. The passphrase of an encrypted key file comes from `passphrase`, else from the first
/// line of `passphrase_file`, else from `REMOTE_SIGNER_KEY_PASSPHRASE`. Key Vault credentials come
/// from the standard Azure environment.
#[pyfunction]
#[pyo3(signature = (
    keyref,
    *,
    passphrase = None,
    passphrase_file = None,
    allow_readable_key_file = false,
    verify_challenge_resource = true,
))]
pub fn open(
    py: Python<'_>,
    keyref: String,
    passphrase: Option<&Bound<'_, PyAny>>,
    passphrase_file: Option<std::path::PathBuf>,
    allow_readable_key_file: bool,
    verify_challenge_resource: bool,
) -> PyResult<Key> {
    let key_ref: KeyRef = keyref.parse().map_err(to_py)?;
    let mut local = LocalKeyOptions::new()
        .passphrase_from_env()
        .dangerous_allow_readable_file(allow_readable_key_file);
    if let Some(file) = &passphrase_file {
        local = local.passphrase_file(file).map_err(to_py)?;
    }
    if let Some(given) = passphrase {
        let bytes: Zeroizing<Vec<u8>> = if given.is_instance_of::<PyString>() {
            Zeroizing::new(given.extract::<String>()?.into_bytes())
        } else if let Ok(bytes) = given.cast::<PyBytes>() {
            Zeroizing::new(bytes.as_bytes().to_vec())
        } else {
            return Err(invalid_input("the passphrase must be str or bytes"));
        };
        local = local.passphrase(&*bytes);
    }
    let options = OpenOptions::new()
        .local(local)
        .verify_challenge_resource(verify_challenge_resource);
    let origin = Origin::here();
    let signer = wait(py, origin, async move { key_ref.open(&options).await })?;
    Ok(Key { signer, origin })
}
