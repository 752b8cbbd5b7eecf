//! Turns the SDK's errors into this crate's, keeping only what is safe to show: the HTTP
//! status, Azure error codes and the request id. Response bodies, tokens and digests never
//! reach an error text.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use azure_core::error::ErrorKind as AzKind;
use azure_core::http::RawResponse;
use azure_core::http::headers::{HeaderName, Headers};
use serde::Deserialize;

use crate::backend::safe_text;
use crate::error::ErrorKind;

pub(crate) use crate::backend::stats::Operation;

/// One failed attempt, classified.
pub(super) struct Failure {
    pub(super) kind: ErrorKind,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
    /// Safe text: status, codes, request id.
    pub(super) detail: String,
    pub(super) source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Failure {
    pub(super) fn timeout(after: Duration) -> Self {
        Failure {
            kind: ErrorKind::Timeout,
            retryable: true,
            retry_after: None,
            detail: format!("no answer within {:.1} s", after.as_secs_f64()),
            source: None,
        }
    }
}

/// A credential failure whose text is known to be safe (built by this crate).
#[derive(Debug)]
pub(super) struct CredentialFailure {
    pub(super) text: String,
    /// The kind of a failure worth retrying (the token endpoint throttled, failed or could
    /// not be reached); `None` when retrying cannot help (refused credentials, no credential).
    pub(super) transient: Option<ErrorKind>,
}

impl fmt::Display for CredentialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl StdError for CredentialFailure {}

#[derive(Deserialize)]
struct Body {
    error: Option<BodyError>,
}

#[derive(Deserialize)]
struct BodyError {
    code: Option<String>,
    innererror: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    code: Option<String>,
}

/// Only the error codes of a Key Vault error body, each capped and limited to a safe alphabet.
fn codes(raw: &RawResponse) -> (Option<String>, Option<String>) {
    let safe = |code: String| safe_text(&code, 64);
    match serde_json::from_slice::<Body>(raw.body()) {
        Ok(Body { error: Some(e) }) => (
            e.code.map(safe),
            e.innererror.and_then(|i| i.code).map(safe),
        ),
        _ => (None, None),
    }
}

fn header<'a>(headers: &'a Headers, name: &'static str) -> Option<&'a str> {
    headers.get_optional_str(&HeaderName::from_static(name))
}

/// `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds) or `Retry-After` (seconds, or an
/// HTTP-date, read against `now`; a date in the past means no wait).
fn retry_after_at(now: SystemTime, headers: &Headers) -> Option<Duration> {
    let ms = |name| header(headers, name).and_then(|v| v.trim().parse::<u64>().ok());
    ms("retry-after-ms")
        .or_else(|| ms("x-ms-retry-after-ms"))
        .map(Duration::from_millis)
        .or_else(|| {
            let value = header(headers, "retry-after")?.trim();
            match value.parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => {
                    let at = azure_core::time::parse_rfc7231(value).ok()?;
                    Some(
                        SystemTime::from(at)
                            .duration_since(now)
                            .unwrap_or(Duration::ZERO),
                    )
                }
            }
        })
}

fn request_id(headers: &Headers) -> Option<String> {
    header(headers, "x-ms-request-id").map(|id| safe_text(id, 64))
}

/// Whether rustls refused the server's certificate somewhere in `error`'s causes.
pub(super) fn is_certificate_failure(error: &azure_core::Error) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        // An `io::Error`'s `source()` skips its payload (which may be another `io::Error`
        // holding the rustls error); follow the payload instead.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    false
}

/// A safe one-line description of a credential failure (the Entra status and error codes,
/// never the response's description text), and whether it is worth retrying: the token
/// endpoint throttled (429), failed (408, 5xx) or could not be reached.
pub(super) fn describe(source: &str, error: &azure_core::Error) -> CredentialFailure {
    // The credentials wrap the token endpoint's error in a `Credential` error of their own.
    let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut error = error;
    while let Some(e) = inner {
        if let Some(az) = e.downcast_ref::<azure_core::Error>() {
            error = az;
            if !matches!(az.kind(), AzKind::Credential) {
                break;
            }
        }
        inner = e.source();
    }
    let (text, transient) = match error.kind() {
        AzKind::HttpResponse {
            status, error_code, ..
        } => {
            let status = u16::from(*status);
            let codes = safe_text(error_code.as_deref().unwrap_or_default(), 64);
            let mut text = format!("{source} credential: token endpoint answered HTTP {status}");
            if !codes.is_empty() {
                text.push_str(&format!(" (Entra error codes {codes})"));
            }
            let transient = match status {
                429 => Some(ErrorKind::Throttled),
                408 => Some(ErrorKind::Timeout),
                500..=599 => Some(ErrorKind::Unavailable),
                _ => None,
            };
            (text, transient)
        }
        AzKind::Io | AzKind::Connection if is_certificate_failure(error) => (
            format!("{source} credential: the token endpoint's TLS certificate is not trusted"),
            None,
        ),
        AzKind::Io | AzKind::Connection => (
            format!("{source} credential: cannot reach the token endpoint"),
            Some(ErrorKind::Unavailable),
        ),
        _ => (format!("{source} credential: could not get a token"), None),
    };
    CredentialFailure { text, transient }
}

/// Classifies one failed attempt.
pub(super) fn classify(now: SystemTime, op: Operation, error: &azure_core::Error) -> Failure {
    let mut failure = Failure {
        kind: ErrorKind::Protocol,
        retryable: false,
        retry_after: None,
        detail: String::new(),
        source: None,
    };
    match error.kind() {
        AzKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let status = u16::from(*status);
            let (code, inner) = raw_response.as_deref().map(codes).unwrap_or_default();
            let headers = raw_response.as_deref().map(RawResponse::headers);
            let disabled = [&code, &inner].iter().any(|c| {
                matches!(
                    c.as_deref(),
                    Some("KeyDisabled" | "KeyExpired" | "KeyNotYetValid")
                )
            });
            (failure.kind, failure.retryable) = match status {
                401 => (ErrorKind::PermissionDenied, false),
                403 if disabled => (ErrorKind::KeyDisabled, false),
                403 => (ErrorKind::PermissionDenied, false),
                404 => (ErrorKind::KeyNotFound, false),
                408 => (ErrorKind::Timeout, true),
                429 => (ErrorKind::Throttled, true),
                500..=599 => (ErrorKind::Unavailable, true),
                _ => (ErrorKind::Protocol, false),
            };
            if failure.retryable {
                failure.retry_after = headers.and_then(|h| retry_after_at(now, h));
            }
            let mut detail = format!("HTTP {status}");
            match (code, inner) {
                (Some(code), Some(inner)) => detail.push_str(&format!(" {code}/{inner}")),
                (Some(code), None) => detail.push_str(&format!(" {code}")),
                _ => {}
            }
            if let Some(id) = headers.and_then(request_id) {
                detail.push_str(&format!(", request id {id}"));
            }
            if status == 401 {
                detail.push_str(", the vault did not accept the access token");
            }
            if op == Operation::Sign && status == 403 && !disabled {
                detail.push_str(", the caller may lack the keys/sign permission");
            }
            failure.detail = detail;
        }
        AzKind::Io | AzKind::Connection if is_certificate_failure(error) => {
            // Retrying cannot help: the vault's certificate is not trusted here.
            failure.kind = ErrorKind::Unavailable;
            failure.detail = "TLS: the vault's certificate is not trusted (for a private CA \
                or an emulator, point SSL_CERT_FILE at its CA certificate)"
                .to_string();
        }
        AzKind::Io | AzKind::Connection => {
            failure.kind = ErrorKind::Unavailable;
            failure.retryable = true;
            failure.detail = "cannot reach the vault (connection failure)".to_string();
            failure.source = Some(error.to_string().into());
        }
        AzKind::Credential => {
            // `DefaultCredential` leaves a safe description; a credential given by the
            // application is described here the same way.
            let mut found = None;
            let mut source: Option<&(dyn StdError + 'static)> = Some(error);
            while let Some(e) = source {
                if let Some(safe) = e.downcast_ref::<CredentialFailure>() {
                    found = Some((safe.text.clone(), safe.transient));
                    break;
                }
                source = e.source();
            }
            let (text, transient) = found.unwrap_or_else(|| {
                let described = describe("access token", error);
                (described.text, described.transient)
            });
            failure.kind = transient.unwrap_or(ErrorKind::PermissionDenied);
            failure.retryable = transient.is_some();
            failure.detail = text;
        }
        AzKind::DataConversion => {
            failure.detail = "the reply could not be decoded".to_string();
        }
        _ => {
            let text = error.to_string();
            if text.contains("challenge resource") {
                failure.kind = ErrorKind::Config;
                failure.detail = "the vault's authentication challenge names a resource outside \
                    the vault's domain (switch the challenge-resource check off only for \
                    emulators and private endpoints)"
                    .to_string();
            } else {
                failure.detail = "the request failed in the Azure SDK".to_string();
            }
        }
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;

    fn http_error(status: u16, headers: &[(&'static str, &str)], body: &str) -> azure_core::Error {
        let mut h = Headers::new();
        for (name, value) in headers {
            h.insert(HeaderName::from_static(name), value.to_string());
        }
        let status = StatusCode::from(status);
        let raw = RawResponse::from_bytes(status, h, body.as_bytes().to_vec());
        azure_core::Error::with_message(
            AzKind::HttpResponse {
                status,
                error_code: None,
                raw_response: Some(Box::new(raw)),
            },
            "the SDK's message, which may quote the body",
        )
    }

    #[test]
    fn statuses_map_to_kinds_with_codes_and_request_id_only() {
        let body = r#"{"error":{"code":"Forbidden","message":"Caller appid=secret-ish is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let f = classify(
            SystemTime::now(),
            Operation::Sign,
            &http_error(403, &[("x-ms-request-id", "abc-123")], body),
        );
        assert_eq!((f.kind, f.retryable), (ErrorKind::PermissionDenied, false));
        assert!(
            f.detail.contains("HTTP 403 Forbidden/ForbiddenByRbac"),
            "{}",
            f.detail
        );
        assert!(f.detail.contains("request id abc-123"), "{}", f.detail);
        assert!(
            !f.detail.contains("appid") && !f.detail.contains("SDK"),
            "{}",
            f.detail
        );

        let disabled =
            r#"{"error":{"code":"Forbidden","message":"x","innererror":{"code":"KeyDisabled"}}}"#;
        assert_eq!(
            classify(
                SystemTime::now(),
                Operation::Sign,
                &http_error(403, &[], disabled)
            )
            .kind,
            ErrorKind::KeyDisabled
        );
        let missing =
            r#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) k was not found"}}"#;
        assert_eq!(
            classify(
                SystemTime::now(),
                Operation::GetKey,
                &http_error(404, &[], missing)
            )
            .kind,
            ErrorKind::KeyNotFound
        );
        assert_eq!(
            classify(
                SystemTime::now(),
                Operation::GetKey,
                &http_error(401, &[], "")
            )
            .kind,
            ErrorKind::PermissionDenied
        );
        let f = classify(
            SystemTime::now(),
            Operation::Sign,
            &http_error(503, &[("retry-after", "2")], "not json"),
        );
        assert_eq!(
            (f.kind, f.retryable, f.retry_after),
            (ErrorKind::Unavailable, true, Some(Duration::from_secs(2)))
        );
        assert_eq!(
            classify(
                SystemTime::now(),
                Operation::Sign,
                &http_error(400, &[], "{}")
            )
            .kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn retry_after_headers_in_order_of_precision() {
        let f = |headers: &[(&'static str, &str)]| {
            classify(
                SystemTime::now(),
                Operation::Sign,
                &http_error(429, headers, ""),
            )
            .retry_after
        };
        assert_eq!(f(&[]), None);
        assert_eq!(
            f(&[("retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            f(&[("x-ms-retry-after-ms", "40")]),
            Some(Duration::from_millis(40))
        );
        assert_eq!(f(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(
            f(&[("retry-after", "3"), ("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        // Anything else is no hint: the computed backoff applies.
        assert_eq!(f(&[("retry-after", "soon")]), None);
    }

    #[test]
    fn an_http_date_retry_after_is_read_against_the_clock() {
        let mut headers = Headers::new();
        headers.insert(
            HeaderName::from_static("retry-after"),
            "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
        );
        let at = |s: &str| SystemTime::from(azure_core::time::parse_rfc7231(s).unwrap());
        assert_eq!(
            retry_after_at(at("Sun, 06 Nov 1994 08:49:07 GMT"), &headers),
            Some(Duration::from_secs(30))
        );
        // A date already past: retry without waiting on the service's account.
        assert_eq!(
            retry_after_at(at("Sun, 06 Nov 1994 09:00:00 GMT"), &headers),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn codes_are_capped_and_sanitised() {
        let body = format!(
            r#"{{"error":{{"code":"Bad\u001b[31m{}"}}}}"#,
            "x".repeat(500)
        );
        let f = classify(
            SystemTime::now(),
            Operation::Sign,
            &http_error(400, &[], &body),
        );
        assert!(f.detail.len() < 100, "{}", f.detail);
        assert!(!f.detail.contains('\u{1b}'));
    }
}
