//! AWS Signature Version 4, verified by hand from the specification (the canonical request,
//! the string to sign and the derived signing key), independently of the SDK's signer.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What the `Authorization` header claims.
#[derive(Debug)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
pub(crate) fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let (akid, date, region, service, terminal) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    if terminal != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The parts of a request that its signature covers.
pub(crate) struct Signed<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) amz_date: &'a str,
    pub(crate) body: &'a [u8],
}

/// The signature the request should carry, given the secret key.
pub(crate) fn expected_signature(
    auth: &Authorization,
    secret: &str,
    request: &Signed<'_>,
) -> Option<String> {
    let Signed {
        method,
        path,
        query,
        headers,
        amz_date,
        body,
    } = *request;
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                let v = String::from_utf8_lossy(v.as_bytes());
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return None;
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let mut query_pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    query_pairs.sort_unstable();
    let canonical_request = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{}",
        query_pairs.join("&"),
        auth.signed_headers.join(";"),
        hex(&Sha256::digest(body))
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    Some(hex(&hmac(&k_signing, string_to_sign.as_bytes())))
}

/// Compares two signatures without stopping at the first difference.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla` case of the AWS SigV4 test suite (service `service`, region
    /// `us-east-1`, the suite's example secret).
    #[test]
    fn matches_the_sigv4_test_suite() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let request = Signed {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            amz_date: "20150830T123600Z",
            body: b"",
        };
        let got = expected_signature(&auth, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &request)
            .unwrap();
        assert!(same(&got, &auth.signature), "{got}");
        let wrong = expected_signature(&auth, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX", &request)
            .unwrap();
        assert!(!same(&wrong, &auth.signature));
    }
}
