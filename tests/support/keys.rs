//! Fixed RSA keys for tests that need *some* RSA key rather than a freshly generated one:
//! generating an RSA-2048 key costs about a quarter of a CPU second. Tests about key
//! generation still generate. The keys are `rsa_key_pool::fixed_pem` (see
//! `crates/rsa-key-pool/keys/README.md`), loaded with the library's own loader, so a test sees
//! them exactly as a user's key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use remote_signer::backend::local::LocalSigner;
use remote_signer::{KeyType, RemoteSigner};

/// Fixed RSA-2048 key number `n` (PKCS#8 PEM); each index is a different key.
fn pem(n: usize) -> &'static str {
    rsa_key_pool::fixed_pem(2048, n)
}

/// Fixed RSA key number `n` (distinct `n`, distinct keys), held in memory as
/// [`LocalSigner::generate`] holds a generated one (key id `memory:<thumbprint>`).
pub fn rsa(n: usize) -> LocalSigner {
    LocalSigner::from_bytes(pem(n).as_bytes(), None).unwrap()
}

/// Writes fixed RSA key number `n` to the new file `path` (mode 0600, as a key file must be)
/// and opens it, as [`LocalSigner::generate_to_file`] leaves a generated one.
pub fn rsa_file(n: usize, path: &Path) -> LocalSigner {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).unwrap(), pem(n).as_bytes()).unwrap();
    LocalSigner::open(path).unwrap()
}

/// Some key of `key_type` for a test that is not about generating one: fixed RSA key number
/// `n`, or a fresh key of the other types (cheap to generate).
pub fn any(key_type: KeyType, n: usize) -> LocalSigner {
    match key_type {
        KeyType::Rsa => rsa(n),
        _ => LocalSigner::generate(key_type).unwrap(),
    }
}

/// As [`any`], written to the new file `path` (mode 0600) and opened from there.
pub fn any_file(key_type: KeyType, n: usize, path: &Path) -> LocalSigner {
    match key_type {
        KeyType::Rsa => rsa_file(n, path),
        _ => LocalSigner::generate_to_file(key_type, path).unwrap(),
    }
}

/// Some key of `key_type` (as [`any_file`], number 0) in the new file `dir/<type>.pem`, for a
/// test that hands the CLI a key file and checks what it made with the signer: the file's path
/// and the signer.
pub fn key_file(dir: &Path, key_type: KeyType) -> (PathBuf, Arc<dyn RemoteSigner>) {
    let path = dir.join(format!("{key_type:?}.pem").to_lowercase());
    let signer = any_file(key_type, 0, &path);
    (path, Arc::new(signer))
}
