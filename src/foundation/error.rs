//! The crate's one error type.
//!
//! [`Error`] is opaque: match on [`Error::kind`] and use the predicates. Its text says what
//! happened and where (a file name, a key id, an HTTP status, an Azure error code or request id)
//! and never carries key material, tokens, digests, message bytes or response bodies.

use std::error::Error as StdError;
use std::fmt;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely, so callers can decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key file could not be read, or its content is not a supported key.
    KeyFile,
    /// A key file is readable by group or others and the opt-out was not given.
    InsecureKeyFile,
    /// An encrypted key needs a passphrase and none was given, or the given one is wrong.
    Passphrase,
    /// The key's type or size is not supported.
    UnsupportedKey,
    /// The algorithm does not fit the key, or is unknown.
    Algorithm,
    /// A signature did not verify.
    InvalidSignature,
    /// A public key, signature or other input could not be decoded.
    InvalidInput,
    /// The signer failed to produce a signature (details are deliberately withheld).
    Signing,
    /// A key reference could not be understood.
    KeyRef,
    /// The backend refused: the caller lacks permission (HTTP 401/403).
    PermissionDenied,
    /// The key (or key version) does not exist.
    KeyNotFound,
    /// The key exists but is disabled, or outside its validity window.
    KeyDisabled,
    /// The backend kept throttling the caller after the allowed retries.
    Throttled,
    /// The backend could not be reached or failed (connection, TLS, 5xx).
    Unavailable,
    /// The operation did not finish in the allowed time.
    Timeout,
    /// The backend answered in a way this crate did not expect.
    Protocol,
    /// A token or certificate is invalid (malformed, forged, wrong purpose, ...).
    InvalidToken,
    /// A token or certificate is expired or not yet valid.
    Expired,
    /// Configuration is invalid or incomplete (missing credentials, bad option values).
    Config,
    /// An I/O error other than reading a key file.
    Io,
    /// A token refused the PIN (wrong, expired or not set), or none was given.
    Pin,
    /// A token's user PIN is locked after too many wrong tries.
    PinLocked,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::KeyFile => "cannot load key file",
            ErrorKind::InsecureKeyFile => "key file permissions are too open",
            ErrorKind::Passphrase => "cannot decrypt key",
            ErrorKind::UnsupportedKey => "unsupported key",
            ErrorKind::Algorithm => "algorithm not usable",
            ErrorKind::InvalidSignature => "signature is invalid",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Signing => "signing failed",
            ErrorKind::KeyRef => "invalid key reference",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::KeyNotFound => "key not found",
            ErrorKind::KeyDisabled => "key is disabled or not valid now",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "service unavailable",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Protocol => "unexpected response",
            ErrorKind::InvalidToken => "invalid token",
            ErrorKind::Expired => "expired or not yet valid",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Io => "I/O error",
            ErrorKind::Pin => "PIN not accepted",
            ErrorKind::PinLocked => "PIN locked",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The error of every fallible operation in this crate.
///
/// Built with a kind and a short, safe context text. Sources are kept for chaining only when
/// they are known to be free of secrets (I/O, HTTP transport); cryptographic failures are
/// reduced to their kind.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    context: Option<String>,
    /// The context is a whole sentence that says what failed; the kind's text is left out.
    sentence: bool,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with no further context.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                context: None,
                sentence: false,
                source: None,
            }),
        }
    }

    /// An error of `kind` with a context text. The text must not contain secrets.
    pub fn with_context(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self::new(kind).context(context)
    }

    /// Sets the context text. The text must not contain secrets.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.inner.context = Some(context.into());
        self
    }

    /// Attaches a source error. Only for sources whose text carries no secrets.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// True when retrying later may succeed (throttling, outage, timeout).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Timeout
        )
    }

    /// True for [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True when a signature, token or certificate was refused.
    pub fn is_verification(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::InvalidSignature | ErrorKind::InvalidToken | ErrorKind::Expired
        )
    }

    /// An error whose text is `text` alone, a whole sentence naming what failed and why
    /// ("cannot read key file k.pem: no such file"). The text must not contain secrets.
    pub(crate) fn sentence(kind: ErrorKind, text: impl Into<String>) -> Self {
        let mut error = Self::with_context(kind, text);
        error.inner.sentence = true;
        error
    }

    /// The context text alone, without the kind's text.
    pub(crate) fn context_text(&self) -> Option<&str> {
        self.inner.context.as_deref()
    }

    /// Puts `prefix: ` in front of the context (for naming the file or key concerned).
    pub(crate) fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.inner.context = Some(match self.inner.context.take() {
            Some(context) => format!("{prefix}: {context}"),
            None => prefix.to_string(),
        });
        self
    }

    pub(crate) fn algorithm(what: impl Into<String>) -> Self {
        Self::with_context(ErrorKind::Algorithm, what)
    }

    pub(crate) fn invalid_input(what: impl Into<String>) -> Self {
        Self::with_context(ErrorKind::InvalidInput, what)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(context) = &self.inner.context {
            d.field("context", context);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.sentence
            && let Some(context) = &self.inner.context
        {
            return f.write_str(context);
        }
        f.write_str(self.inner.kind.describe())?;
        if let Some(context) = &self.inner.context {
            write!(f, ": {context}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// `text` for an error message: control characters (a newline in a file name, a terminal
/// escape) are escaped, so a message stays one line and cannot rewrite the terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path for an error message, with [`printable`]'s escaping.
pub(crate) fn printable_path(path: &std::path::Path) -> String {
    printable(&path.to_string_lossy())
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_has_kind_and_context() {
        let e = Error::with_context(ErrorKind::KeyNotFound, "vault/keys/a (404 KeyNotFound)");
        assert_eq!(
            e.to_string(),
            "key not found: vault/keys/a (404 KeyNotFound)"
        );
        assert!(!e.is_transient());
        assert!(Error::new(ErrorKind::Throttled).is_transient());
    }

    #[test]
    fn a_sentence_stands_alone_and_control_characters_are_escaped() {
        let path = std::path::Path::new("a\nb\u{1b}[2J.pem");
        let e = Error::sentence(
            ErrorKind::KeyFile,
            format!(
                "cannot read key file {}: no such file",
                printable_path(path)
            ),
        );
        assert_eq!(
            e.to_string(),
            "cannot read key file a\\nb\\u{1b}[2J.pem: no such file"
        );
        assert_eq!(e.kind(), ErrorKind::KeyFile);
    }
}
