//! axum glue (feature `axum`): an extractor for the verified session, and helpers that set
//! and clear the session cookie with safe defaults.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use remote_signer::cookie::axum::{SessionCookies, ValidSession};
//!
//! async fn page(ValidSession(session): ValidSession) -> String {
//!     format!("hello {}", session.claims()["user"])
//! }
//!
//! # fn app(cookies: SessionCookies) -> Router {
//! // `SessionCookies` is the router's state, or reachable from it with `FromRef`.
//! Router::new().route("/", get(page)).with_state(cookies)
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Session, SessionSigner, SessionVerifier};
use crate::error::{Error, ErrorKind, Result};

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level navigations from other sites (the default).
    Lax,
    /// Sent on cross-site requests too (browsers require `Secure` with it).
    None,
}

/// Attributes of the session cookie. Defaults: `Secure`, `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, no `Domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
        }
    }
}

impl CookieOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SameSite` (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// `Domain` (default none: the cookie goes back to the issuing host only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Drops `Secure`, so the cookie also travels over plain HTTP to hosts other than
    /// localhost. Never in production.
    pub fn dangerous_insecure(mut self) -> Self {
        self.secure = false;
        self
    }

    /// Drops `HttpOnly`, so page scripts can read the token.
    pub fn dangerous_script_readable(mut self) -> Self {
        self.http_only = false;
        self
    }

    /// The cookie `name=value` with these attributes, built by the `cookie` crate.
    fn cookie<'c>(&self, name: &'c str, value: &'c str) -> cookie::Cookie<'c> {
        let mut builder = cookie::Cookie::build((name, value))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(match self.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        builder.build()
    }
}

/// Issues, reads and clears one session cookie; its name is the purpose. Cheap to clone: use it
/// as (part of) an axum router's state.
#[derive(Clone)]
pub struct SessionCookies {
    inner: Arc<Inner>,
}

struct Inner {
    signer: SessionSigner,
    verifier: SessionVerifier,
    options: CookieOptions,
}

impl fmt::Debug for SessionCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookies")
            .field("signer", &self.inner.signer)
            .field("verifier", &self.inner.verifier)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl SessionCookies {
    /// Cookies named after the purpose of `signer` and `verifier`, with `options`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if signer and verifier have different purposes, or the purpose is
    /// not a valid cookie name.
    pub fn new(
        signer: SessionSigner,
        verifier: SessionVerifier,
        options: CookieOptions,
    ) -> Result<Self> {
        if signer.purpose() != verifier.purpose() {
            return Err(Error::with_context(
                ErrorKind::Config,
                "session signer and verifier have different purposes",
            ));
        }
        let name = signer.purpose();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(Error::with_context(
                ErrorKind::Config,
                "the purpose is not a valid cookie name",
            ));
        }
        Ok(SessionCookies {
            inner: Arc::new(Inner {
                signer,
                verifier,
                options,
            }),
        })
    }

    /// The cookie's name: the purpose.
    pub fn name(&self) -> &str {
        self.inner.signer.purpose()
    }

    /// Signs `claims` and returns the `Set-Cookie` header value, with `Max-Age` equal to the
    /// token's lifetime.
    ///
    /// # Errors
    /// As [`SessionSigner::sign`].
    pub async fn issue<C: Serialize + ?Sized>(&self, claims: &C) -> Result<HeaderValue> {
        let token = self.inner.signer.sign(claims).await?;
        let max_age = i64::try_from(self.inner.signer.ttl().as_secs()).unwrap_or(i64::MAX);
        let mut cookie = self.inner.options.cookie(self.name(), &token);
        cookie.set_max_age(cookie::time::Duration::seconds(max_age));
        HeaderValue::from_str(&cookie.to_string())
            .map_err(|_| Error::with_context(ErrorKind::InvalidInput, "cookie header"))
    }

    /// The `Set-Cookie` header value that removes the cookie (empty, `Max-Age=0` and an
    /// `Expires` in the past, with the same attributes).
    pub fn clear(&self) -> HeaderValue {
        let mut cookie = self.inner.options.cookie(self.name(), "");
        cookie.make_removal();
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Verifies the session cookie among a request's `Cookie` headers. When several cookies
    /// bear the name, the first that verifies wins.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidToken`] when there is no such cookie; otherwise as
    /// [`SessionVerifier::verify`].
    pub fn verify_headers(&self, headers: &HeaderMap) -> Result<Session> {
        let mut last = None;
        let values = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let cookies = values
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(std::result::Result::ok);
        for cookie in cookies {
            if cookie.name() != self.name() {
                continue;
            }
            match self.inner.verifier.verify(cookie.value_trimmed()) {
                Ok(session) => return Ok(session),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::with_context(ErrorKind::InvalidToken, "no session cookie")))
    }

    /// A response header pair that sets the cookie, for `(header, value)` tuples in handlers.
    pub fn set_cookie_header(value: HeaderValue) -> (axum::http::HeaderName, HeaderValue) {
        (SET_COOKIE, value)
    }
}

/// The verified session of a request; extracting it rejects the request with
/// `401 Unauthorized` when the cookie is missing or invalid. Extract `Option<ValidSession>`
/// for pages that serve visitors with and without a session alike.
#[derive(Debug, Clone)]
pub struct ValidSession(pub Session);

/// Why [`ValidSession`] was not extracted. Responds `401 Unauthorized` with a fixed text; the
/// reason is for logs ([`SessionRejection::error`]).
#[derive(Debug)]
pub struct SessionRejection(Error);

impl SessionRejection {
    /// The reason, coarse and free of token contents.
    pub fn error(&self) -> &Error {
        &self.0
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        (StatusCode::UNAUTHORIZED, "invalid or missing session\n").into_response()
    }
}

impl<S> FromRequestParts<S> for ValidSession
where
    S: Send + Sync,
    SessionCookies: FromRef<S>,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let cookies = SessionCookies::from_ref(state);
        cookies
            .verify_headers(&parts.headers)
            .map(ValidSession)
            .map_err(SessionRejection)
    }
}

impl<S> OptionalFromRequestParts<S> for ValidSession
where
    S: Send + Sync,
    SessionCookies: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Option<Self>, Self::Rejection> {
        let cookies = SessionCookies::from_ref(state);
        Ok(cookies
            .verify_headers(&parts.headers)
            .ok()
            .map(ValidSession))
    }
}
