//! Compact JWS (RFC 7515) framing shared by certificates and session tokens: splitting,
//! base64url parts, JSON decoding. Signature checks live with the callers, which know which
//! key and algorithm they trust.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// The three parts of a compact JWS, still encoded.
pub(crate) struct Compact<'a> {
    /// `base64url(header) "." base64url(payload)`: the bytes that are signed.
    pub signing_input: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

pub(crate) fn invalid(what: &str) -> Error {
    Error::with_context(ErrorKind::InvalidToken, what.to_string())
}

/// Splits a compact JWS into its parts; refuses anything but three non-empty base64url parts.
pub(crate) fn split<'a>(token: &'a str, what: &str) -> Result<Compact<'a>> {
    let malformed = || invalid(&format!("{what} is not a compact JWS"));
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(malformed());
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    Ok(Compact {
        signing_input: &token[..header.len() + 1 + payload.len()],
        header,
        payload,
        signature,
    })
}

/// Decodes one base64url part (no padding).
pub(crate) fn decode_part(part: &str, what: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(&format!("{what} is not base64url")))
}

/// Decodes a base64url part holding a JSON object.
pub(crate) fn decode_json<T: DeserializeOwned>(part: &str, what: &str) -> Result<T> {
    let bytes = decode_part(part, what)?;
    serde_json::from_slice(&bytes).map_err(|_| invalid(&format!("{what} is not the expected JSON")))
}

/// Encodes bytes as one base64url part.
pub(crate) fn encode_part(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header) "." base64url(payload)` for two JSON values.
pub(crate) fn signing_input<H: serde::Serialize, P: serde::Serialize>(
    header: &H,
    payload: &P,
) -> Result<String> {
    let bad = |_| Error::with_context(ErrorKind::InvalidInput, "cannot encode JSON");
    let header = serde_json::to_vec(header).map_err(bad)?;
    let payload = serde_json::to_vec(payload).map_err(bad)?;
    let mut out = encode_part(&header);
    out.push('.');
    out.push_str(&encode_part(&payload));
    Ok(out)
}

/// Signs `signing_input` with `signer`, checks the signature with the signer's public key, and
/// returns the compact JWS. A garbled signature from a remote key is never handed out.
pub(crate) async fn sign(
    signer: &dyn crate::RemoteSigner,
    algorithm: crate::Algorithm,
    mut signing_input: String,
) -> Result<String> {
    let signature =
        crate::signer::sign_verified(signer, algorithm, signing_input.as_bytes()).await?;
    signing_input.push('.');
    signing_input.push_str(&encode_part(signature.as_bytes()));
    Ok(signing_input)
}

/// For an optional header member whose mere presence matters (`crit`): `Some` whenever the
/// member is there, even as `null`, which a plain `Option` would read as absent. Use with
/// `#[serde(default, deserialize_with = "jws::present")]`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}
