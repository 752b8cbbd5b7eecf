//! Turns the SDK's errors into this crate's, keeping only what is safe to show: the KMS action,
//! the AWS error code, the HTTP status and the request id. Error messages from the service,
//! response bodies, credentials and digests never reach an error text.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;

use crate::backend::safe_text;
use crate::error::{Error, ErrorKind};

/// Where the default credential chain looks, in its order (said when none of it had
/// credentials).
const CHAIN: &str = "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), the \
                     profile in the shared config and credentials files (AWS_PROFILE, \
                     AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE; SSO, credential_process), web \
                     identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), ECS container \
                     credentials and EC2 instance metadata (IMDSv2)";

/// Whether an error body (`{"__type": "...", "message": "..."}`, the type possibly prefixed
/// with its namespace and `#`) says the request was throttled.
pub(super) fn is_throttling(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.kind)
        .is_some_and(|k| {
            let code = k.rsplit('#').next().unwrap_or_default();
            kind_of(code, Some(400)).0 == ErrorKind::Throttled
        })
}

/// What an error code means for the caller.
fn kind_of(code: &str, status: Option<u16>) -> (ErrorKind, &'static str) {
    match code {
        "AccessDeniedException" => (ErrorKind::PermissionDenied, "refused by policy"),
        "NotFoundException" => (ErrorKind::KeyNotFound, "no such key or alias"),
        "DisabledException" => (ErrorKind::KeyDisabled, "the key is disabled"),
        "KMSInvalidStateException" => (
            ErrorKind::KeyDisabled,
            "the key is not usable in its state (pending deletion or import, or unavailable)",
        ),
        "KeyUnavailableException" => (ErrorKind::Unavailable, "the key is unavailable"),
        "ThrottlingException" | "LimitExceededException" => {
            (ErrorKind::Throttled, "throttled after the allowed retries")
        }
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "InternalFailure"
        | "ServiceUnavailable" => (ErrorKind::Unavailable, "still failing after the retries"),
        "UnsupportedOperationException" => (
            ErrorKind::UnsupportedKey,
            "the key has no public key to sign with (a symmetric or HMAC key)",
        ),
        "InvalidKeyUsageException" => (
            ErrorKind::UnsupportedKey,
            "the key's usage or algorithms do not allow this",
        ),
        "InvalidSignatureException" | "IncompleteSignature" | "SignatureDoesNotMatch" => (
            ErrorKind::PermissionDenied,
            "the request signature was refused: the secret access key does not match the access key id",
        ),
        "UnrecognizedClientException" | "InvalidClientTokenId" => (
            ErrorKind::PermissionDenied,
            "the access key id or session token is not recognised",
        ),
        "ExpiredTokenException" | "RequestExpired" => {
            (ErrorKind::PermissionDenied, "the session token has expired")
        }
        "ValidationException" | "InvalidArnException" | "InvalidGrantTokenException" => {
            (ErrorKind::Protocol, "the service refused the request")
        }
        _ => match status {
            Some(s) if s >= 500 => (ErrorKind::Unavailable, "still failing after the retries"),
            Some(403) | Some(401) => (ErrorKind::PermissionDenied, "refused"),
            _ => (ErrorKind::Protocol, "unexpected error"),
        },
    }
}

/// Finds a credential provider's error in a chain of sources.
fn credentials_error<'a>(
    mut source: Option<&'a (dyn StdError + 'static)>,
) -> Option<&'a CredentialsError> {
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        source = e.source();
    }
    None
}

/// A failed KMS call (after the SDK's retries) as this crate's error. `action` is the IAM action
/// (`kms:Sign`, `kms:GetPublicKey`), `what` names the key.
pub(super) fn classify<E>(action: &str, what: &str, error: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let at = |kind: ErrorKind, text: String| {
        Error::with_context(kind, format!("{what}: {action}: {text}"))
    };
    match error {
        SdkError::TimeoutError(_) => at(
            ErrorKind::Timeout,
            "no answer within the time allowed".into(),
        ),
        SdkError::DispatchFailure(failure) => {
            if let Some(c) = credentials_error(StdError::source(error)) {
                return credentials(action, what, c);
            }
            let why = if failure.is_timeout() {
                return at(ErrorKind::Timeout, "the connection timed out".into());
            } else if failure.is_io() {
                "cannot reach the KMS endpoint"
            } else {
                "the request could not be sent"
            };
            at(ErrorKind::Unavailable, why.into())
        }
        SdkError::ConstructionFailure(_) => {
            if let Some(c) = credentials_error(StdError::source(error)) {
                return credentials(action, what, c);
            }
            at(ErrorKind::Config, "the request could not be built".into())
        }
        _ => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let code = error.code().map(|c| safe_text(c, 64));
            let request_id = error.request_id().map(|id| safe_text(id, 64));
            let (kind, meaning) = match &code {
                Some(code) => kind_of(code, status),
                None => kind_of("", status),
            };
            let meaning = if kind == ErrorKind::PermissionDenied
                && code.as_deref() == Some("AccessDeniedException")
            {
                format!("{action} was refused by policy")
            } else {
                meaning.to_string()
            };
            let mut text = meaning;
            text.push_str(" (");
            text.push_str(code.as_deref().unwrap_or("no error code"));
            if let Some(status) = status {
                text.push_str(&format!(", HTTP {status}"));
            }
            if let Some(id) = request_id {
                text.push_str(&format!(", request id {id}"));
            }
            text.push(')');
            at(kind, text)
        }
    }
}

fn credentials(action: &str, what: &str, error: &CredentialsError) -> Error {
    let text = match error {
        CredentialsError::CredentialsNotLoaded(_) => {
            format!("no AWS credentials found; tried {CHAIN}")
        }
        CredentialsError::ProviderTimedOut(_) => {
            "the credential provider did not answer in time".to_string()
        }
        CredentialsError::InvalidConfiguration(_) => {
            "the AWS credential configuration is invalid".to_string()
        }
        _ => "the credential provider failed".to_string(),
    };
    let kind = match error {
        CredentialsError::ProviderTimedOut(_) => ErrorKind::Timeout,
        _ => ErrorKind::PermissionDenied,
    };
    Error::with_context(kind, format!("{what}: {action}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        for (code, kind) in [
            ("AccessDeniedException", ErrorKind::PermissionDenied),
            ("NotFoundException", ErrorKind::KeyNotFound),
            ("DisabledException", ErrorKind::KeyDisabled),
            ("KMSInvalidStateException", ErrorKind::KeyDisabled),
            ("ThrottlingException", ErrorKind::Throttled),
            ("KMSInternalException", ErrorKind::Unavailable),
            ("DependencyTimeoutException", ErrorKind::Unavailable),
            ("InvalidKeyUsageException", ErrorKind::UnsupportedKey),
            ("InvalidSignatureException", ErrorKind::PermissionDenied),
            ("UnrecognizedClientException", ErrorKind::PermissionDenied),
            ("ExpiredTokenException", ErrorKind::PermissionDenied),
        ] {
            assert_eq!(kind_of(code, Some(400)).0, kind, "{code}");
        }
        assert_eq!(kind_of("Whatever", Some(503)).0, ErrorKind::Unavailable);
        assert_eq!(kind_of("Whatever", Some(400)).0, ErrorKind::Protocol);
    }

    #[test]
    fn throttling_bodies_are_recognised() {
        assert!(is_throttling(
            br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
        ));
        assert!(is_throttling(
            br#"{"__type":"com.amazonaws.kms#ThrottlingException"}"#
        ));
        assert!(!is_throttling(br#"{"__type":"NotFoundException"}"#));
        assert!(!is_throttling(b"<html>"));
    }
}
