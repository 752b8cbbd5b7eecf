//! Entry points for the fuzz targets in `fuzz/` (not API; hidden from the docs): the parts of
//! this backend that read what a vault, or something posing as one, sends back.

use azure_core::error::ErrorKind as AzKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{RawResponse, StatusCode};
use azure_security_keyvault_keys::models::Key;

use super::error::{Operation, classify};
use super::{KeyUrl, ResolvedKey};
use crate::error::{Error, ErrorKind, Result};

/// Parses `url` as a key URL.
///
/// # Errors
/// As [`KeyUrl::parse`].
pub fn key_url(url: &str) -> Result<()> {
    KeyUrl::parse(url).map(|_| ())
}

/// Reads one reply: a 200 body as a key bundle (public key, version pinning, attributes), any
/// other status as an error reply whose body and `Retry-After` are classified. Returns the error
/// a user would see.
///
/// # Errors
/// The classified error, or the key bundle's refusal.
pub fn service_reply(status: u16, retry_after: &str, body: &[u8]) -> Result<()> {
    let url = KeyUrl::parse("https://fuzz.vault.azure.net/keys/k")?;
    if status == 200 {
        let key: Key = serde_json::from_slice(body)
            .map_err(|_| Error::with_context(ErrorKind::Protocol, "reply is not a key bundle"))?;
        let resolved = ResolvedKey::from_bundle(&url, &key, "fuzz")?;
        return resolved.check_usable(std::time::SystemTime::now(), "fuzz");
    }
    let mut headers = Headers::new();
    headers.insert(
        HeaderName::from_static("retry-after"),
        retry_after.to_string(),
    );
    let status = StatusCode::from(status);
    let raw = RawResponse::from_bytes(status, headers, body.to_vec());
    let error = azure_core::Error::with_message(
        AzKind::HttpResponse {
            status,
            error_code: None,
            raw_response: Some(Box::new(raw)),
        },
        "fuzzed reply",
    );
    let failure = classify(std::time::SystemTime::now(), Operation::Sign, &error);
    Err(Error::with_context(failure.kind, failure.detail))
}
