//! The HTTP client the SDK sends through: reqwest 0.13 over rustls with the ring provider.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{Error, ErrorKind, Result};

/// Builds the client. Roots: the system's, the certificates in `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` when set (in addition to the system's, unlike OpenSSL, so that a private CA
/// does not cost the public roots), and `extra_pem`.
pub(super) fn http_client(
    extra_pem: &[Vec<u8>],
    connect_timeout: Duration,
) -> Result<reqwest::Client> {
    let config_error = |why: &str| Error::with_context(ErrorKind::Config, why.to_string());
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable entries in the system store are skipped, as OpenSSL does.
    // With SSL_CERT_FILE or SSL_CERT_DIR set this loads only those; the system's directories
    // are then added explicitly.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if openssl_probe::has_ssl_cert_env_vars() {
        for dir in openssl_probe::candidate_cert_dirs() {
            let system = rustls_native_certs::load_certs_from_paths(None, Some(dir));
            roots.add_parsable_certificates(system.certs);
        }
    }
    for pem in extra_pem {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| config_error("malformed PEM root certificate"))?;
            roots
                .add(cert)
                .map_err(|_| config_error("unusable root certificate"))?;
            found = true;
        }
        if !found {
            return Err(config_error("no certificate in the given root PEM"));
        }
    }
    if roots.is_empty() {
        return Err(config_error(
            "no trusted root certificates (install ca-certificates or set SSL_CERT_FILE)",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| config_error("TLS configuration failed"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        // Key Vault does not redirect; following redirects could leak a token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| config_error("cannot build the HTTP client"))
}
