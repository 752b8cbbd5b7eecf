//! A small web app whose session cookies are signed through a managed key.
//!
//! Log in with a name, see a page that needs the session, log out. The managed key is the
//! KEYREF in `COOKIE_APP_KEY` (a key file, or a Key Vault key URL with the `azure` feature), or,
//! without it, a throwaway P-256 key made in memory. The managed key signs once per hour (a
//! surrogate certificate); every cookie is signed by the surrogate.
//!
//! ```sh
//! cargo run --example cookie_app --features axum
//! # then open http://127.0.0.1:3000/ (COOKIE_APP_ADDR changes the address; port 0 picks one)
//! ```
//!
//! `tests/cookie.rs` starts it so, on a key file, then logs in, tampers and logs out over HTTP.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::header::SET_COOKIE;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use remote_signer::backend::local::LocalSigner;
use remote_signer::cookie::axum::{CookieOptions, SessionCookies, ValidSession};
use remote_signer::cookie::{SessionSigner, SessionVerifier};
use remote_signer::surrogate::TrustedKey;
use remote_signer::{KeyRef, KeyType, OpenOptions, RemoteSigner};

/// The cookie's name and the tokens' purpose.
const COOKIE: &str = "session";

/// Session cookies signed through `managed`, trusted by its public key alone.
fn session_cookies(managed: Arc<dyn RemoteSigner>) -> remote_signer::Result<SessionCookies> {
    let verifier = SessionVerifier::new([TrustedKey::from_signer(&*managed)], COOKIE);
    let signer = SessionSigner::new(managed, COOKIE)?;
    SessionCookies::new(signer, verifier, CookieOptions::new())
}

/// The app's routes.
fn app(cookies: SessionCookies) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/account", get(account))
        .route("/logout", post(logout))
        .with_state(cookies)
}

async fn home(session: Option<ValidSession>) -> Html<&'static str> {
    Html(match session {
        Some(_) => {
            "<!doctype html><title>cookie app</title><p>You are signed in.</p>\
             <p><a href=/account>Account</a></p>\
             <form method=post action=/logout><button>Log out</button></form>"
        }
        None => {
            "<!doctype html><title>cookie app</title>\
             <form method=post action=/login>\
             <label>Name <input name=user></label> <button>Log in</button></form>\
             <p><a href=/account>Account</a></p>"
        }
    })
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(State(cookies): State<SessionCookies>, Form(form): Form<Login>) -> Response {
    let user: String = form.user.chars().take(64).collect();
    if user.trim().is_empty() {
        return (axum::http::StatusCode::BAD_REQUEST, "a name is needed\n").into_response();
    }
    match cookies.issue(&serde_json::json!({ "user": user })).await {
        Ok(cookie) => ([(SET_COOKIE, cookie)], Redirect::to("/account")).into_response(),
        Err(e) => {
            eprintln!("cookie_app: cannot issue a session: {e}");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "try again later\n",
            )
                .into_response()
        }
    }
}

async fn account(ValidSession(session): ValidSession) -> Html<String> {
    let user = session
        .get("user")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let escaped = user
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    Html(format!(
        "<!doctype html><title>account</title><p>Signed in as {escaped}.</p>\
         <form method=post action=/logout><button>Log out</button></form>"
    ))
}

async fn logout(State(cookies): State<SessionCookies>) -> impl IntoResponse {
    ([(SET_COOKIE, cookies.clear())], Redirect::to("/"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let managed: Arc<dyn RemoteSigner> = match std::env::var("COOKIE_APP_KEY") {
        Ok(key) => key.parse::<KeyRef>()?.open(&OpenOptions::new()).await?,
        Err(_) => Arc::new(LocalSigner::generate(KeyType::P256)?),
    };
    let addr = std::env::var("COOKIE_APP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "cookie_app: managed key {}; listening on http://{}/",
        managed.key_id(),
        listener.local_addr()?
    );
    axum::serve(listener, app(session_cookies(managed)?)).await?;
    Ok(())
}
