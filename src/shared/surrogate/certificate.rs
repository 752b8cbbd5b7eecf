//! The surrogate certificate: a compact JWS signed by the managed key (format in the module
//! docs of [`crate::surrogate`]).

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::clock::from_unix_seconds;
use crate::error::Result;
use crate::jws;
use crate::key::{Algorithm, Jwk, PublicKey};
use crate::signer::RemoteSigner;

/// The `typ` header of every surrogate certificate (RFC 8725 explicit typing), so no other
/// JWT signed by the managed key can pass for a certificate.
pub const CERTIFICATE_TYP: &str = "surrogate+jwt";

#[derive(Serialize, Deserialize)]
pub(crate) struct CertHeader {
    pub alg: String,
    pub kid: String,
    pub typ: String,
    /// Present (even as `null`) means refused: no critical extension is understood here.
    #[serde(
        default,
        deserialize_with = "jws::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub crit: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CertClaims {
    pub iat: u64,
    /// Sent only when it differs from `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub exp: u64,
    pub pur: Vec<String>,
    pub max_exp: u64,
    pub cnf: Confirmation,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Confirmation {
    pub jwk: Jwk,
}

/// What a certificate says, as issued or after verification.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub(crate) issuer: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) subject: String,
    pub(crate) key: PublicKey,
    pub(crate) issued_at: u64,
    pub(crate) not_before: u64,
    pub(crate) expires_at: u64,
    pub(crate) purposes: Vec<String>,
    pub(crate) max_token_expiry: u64,
}

impl CertificateInfo {
    /// The name of the managed key that signed the certificate (header `kid`): its RFC 7638
    /// JWK thumbprint, or the key id its signer was given explicitly. Never a location.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The managed key's algorithm (header `alg`).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The surrogate's RFC 7638 thumbprint, computed from `cnf.jwk` (it is not sent).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The surrogate's public key (`cnf.jwk`).
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// `iat`.
    pub fn issued_at(&self) -> SystemTime {
        from_unix_seconds(self.issued_at)
    }

    /// `nbf` (sent only when it differs from `iat`): the surrogate may sign from then on.
    pub fn not_before(&self) -> SystemTime {
        from_unix_seconds(self.not_before)
    }

    /// `exp`: the surrogate may sign until then.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_seconds(self.expires_at)
    }

    /// `pur`: what the surrogate may sign.
    pub fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// Whether `purpose` is among the certified purposes.
    pub fn allows(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }

    /// `max_exp`: the latest expiry a token signed by the surrogate may carry.
    pub fn max_token_expiry(&self) -> SystemTime {
        from_unix_seconds(self.max_token_expiry)
    }

    pub(crate) fn max_token_expiry_secs(&self) -> u64 {
        self.max_token_expiry
    }

    pub(crate) fn window_secs(&self) -> (u64, u64) {
        (self.not_before, self.expires_at)
    }

    pub(crate) fn issued_at_secs(&self) -> u64 {
        self.issued_at
    }
}

impl fmt::Debug for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateInfo")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("subject", &self.subject)
            .field("not_before", &self.not_before)
            .field("expires_at", &self.expires_at)
            .field("purposes", &self.purposes)
            .field("max_token_expiry", &self.max_token_expiry)
            .finish()
    }
}

/// What the issuer puts in a certificate.
pub(crate) struct Request<'a> {
    /// The managed key's name in the header `kid`.
    pub kid: &'a str,
    pub algorithm: Algorithm,
    pub key: &'a PublicKey,
    pub purposes: &'a [String],
    pub now: u64,
    pub lifetime: u64,
    pub max_token_lifetime: u64,
}

/// Signs a certificate with the managed key and checks the result before returning it, so a
/// signer that returns garbage never yields a certificate.
pub(crate) async fn issue(
    managed: &dyn RemoteSigner,
    request: Request<'_>,
) -> Result<(String, CertificateInfo)> {
    let issuer = request.kid.to_string();
    let expires_at = request.now.saturating_add(request.lifetime);
    let max_token_expiry = expires_at.saturating_add(request.max_token_lifetime);
    let mut jwk = request.key.to_jwk();
    jwk.kid = None;
    let subject = request.key.jwk_thumbprint();
    let header = CertHeader {
        alg: request.algorithm.as_str().to_string(),
        kid: issuer.clone(),
        typ: CERTIFICATE_TYP.to_string(),
        crit: None,
    };
    let claims = CertClaims {
        iat: request.now,
        nbf: None,
        exp: expires_at,
        pur: request.purposes.to_vec(),
        max_exp: max_token_expiry,
        cnf: Confirmation { jwk },
    };
    let signing_input = jws::signing_input(&header, &claims)?;
    let certificate = jws::sign(managed, request.algorithm, signing_input).await?;
    let info = CertificateInfo {
        issuer,
        algorithm: request.algorithm,
        subject,
        key: request.key.clone(),
        issued_at: request.now,
        not_before: request.now,
        expires_at,
        purposes: request.purposes.to_vec(),
        max_token_expiry,
    };
    Ok((certificate, info))
}

/// What a verifier accepts in a certificate, whatever its signature says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The longest signing window (`exp - nbf`).
    pub max_window: u64,
    /// The longest a token may outlive the window (`max_exp - exp`).
    pub max_token_bound: u64,
}

/// Checks a certificate's signature against the trusted keys, its internal consistency and
/// `policy`; no time or purpose checks (the caller does those, per use).
pub(crate) fn verify(
    certificate: &str,
    trusted: &[super::TrustedKey],
    policy: Policy,
) -> Result<CertificateInfo> {
    let parts = jws::split(certificate, "certificate")?;
    let header: CertHeader = jws::decode_json(parts.header, "certificate header")?;
    if header.typ != CERTIFICATE_TYP {
        return Err(jws::invalid("not a surrogate certificate (typ)"));
    }
    if header.crit.is_some() {
        return Err(jws::invalid("certificate has critical header parameters"));
    }
    let signature = jws::decode_part(parts.signature, "certificate signature")?;
    // The key is selected by its name (`kid`); the algorithm comes from that key's
    // allow-list, the header only picks among them (RFC 8725).
    let algorithm = header.alg.parse::<Algorithm>().ok();
    let signed_by = trusted.iter().find(|t| {
        t.matches_id(&header.kid)
            && algorithm.is_some_and(|alg| {
                t.allows(alg)
                    && t.public_key()
                        .verify(alg, parts.signing_input.as_bytes(), &signature)
                        .is_ok()
            })
    });
    let (Some(_), Some(algorithm)) = (signed_by, algorithm) else {
        return Err(jws::invalid(
            "certificate is not signed by a trusted managed key",
        ));
    };
    let claims: CertClaims = jws::decode_json(parts.payload, "certificate claims")?;
    let key = PublicKey::from_jwk(&claims.cnf.jwk)
        .map_err(|_| jws::invalid("certificate confirmation key is not a valid key"))?;
    if key.key_type() != crate::KeyType::Ed25519 {
        return Err(jws::invalid("certificate confirmation key is not Ed25519"));
    }
    let not_before = claims.nbf.unwrap_or(claims.iat);
    if not_before < claims.iat
        || not_before > claims.exp
        || claims.exp > claims.max_exp
        || claims.pur.is_empty()
    {
        return Err(jws::invalid("certificate validity is inconsistent"));
    }
    if claims.exp - not_before > policy.max_window {
        return Err(jws::invalid(
            "certificate signing window is longer than allowed",
        ));
    }
    if claims.max_exp - claims.exp > policy.max_token_bound {
        return Err(jws::invalid(
            "certificate token bound is longer than allowed",
        ));
    }
    Ok(CertificateInfo {
        issuer: header.kid,
        algorithm,
        subject: key.jwk_thumbprint(),
        key,
        issued_at: claims.iat,
        not_before,
        expires_at: claims.exp,
        purposes: claims.pur,
        max_token_expiry: claims.max_exp,
    })
}
