//! Entry points for the fuzz targets in `fuzz/` (not API; hidden from the docs): the parts of
//! this backend that read what KMS, or something posing as it, sends back. The SDK parses the
//! JSON; what this crate reads itself is the ARN, the public key with its usage and spec, and
//! the DER signature.

use aws_sdk_kms::types::{KeySpec, KeyUsageType, SigningAlgorithmSpec};
use base64::Engine as _;

use super::{KmsArn, PublicKeyReply};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, Signature};

/// Parses `arn` as a key or alias ARN.
///
/// # Errors
/// As [`KmsArn::parse`].
pub fn arn(arn: &str) -> Result<()> {
    KmsArn::parse(arn).map(|_| ())
}

/// Reads a `GetPublicKey` reply body (`KeyId`, `PublicKey` in base64, `KeyUsage`, `KeySpec`,
/// `SigningAlgorithms`, as the SDK hands them over) for a request that named an alias, then a
/// DER ECDSA signature as a `Sign` reply carries it. Returns the error a user would see.
///
/// # Errors
/// The reply's refusal.
pub fn public_key_reply(body: &[u8], signature: &[u8]) -> Result<()> {
    let asked = KmsArn::parse("arn:aws:kms:us-east-1:111122223333:alias/fuzz")?;
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Error::with_context(ErrorKind::Protocol, "not JSON"))?;
    let text = |name: &str| json.get(name).and_then(serde_json::Value::as_str);
    let der =
        text("PublicKey").and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let usage = text("KeyUsage").map(KeyUsageType::from);
    let spec = text("KeySpec").map(KeySpec::from);
    let algorithms: Vec<SigningAlgorithmSpec> = json
        .get("SigningAlgorithms")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .map(SigningAlgorithmSpec::from)
                .collect()
        })
        .unwrap_or_default();
    let reply = PublicKeyReply {
        key_id: text("KeyId"),
        public_key: der.as_deref(),
        key_usage: usage.as_ref(),
        key_spec: spec.as_ref(),
        signing_algorithms: &algorithms,
    };
    reply.check(&asked, "fuzz")?;
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::ES256K] {
        let _ = Signature::from_der(alg, signature);
    }
    Ok(())
}
