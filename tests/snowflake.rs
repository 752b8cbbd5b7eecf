//! Snowflake key-pair JWTs: the official connector's vectors (library and CLI), the refusals,
//! the SQL API token cache under load with a fixed clock, and the built example, run as a
//! process against a local HTTPS stand-in for the SQL API.
//!
//! `check_connector_vectors` takes any `Arc<dyn RemoteSigner>` and `check_cli_vectors` any
//! KEYREF, so the same checks run against the vectors' key held elsewhere (a Key Vault).

use crate::support;
use support::faulty::{FaultySigner, Mode};
use support::public_only::{PublicOnly, k256_public};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use remote_signer::backend::local::LocalSigner;
use remote_signer::snowflake::{
    KEYPAIR_JWT, KeyPairAuth, KeySlot, SqlApiTokens, TOKEN_TYPE_HEADER, Token, alter_user_statement,
};
use remote_signer::{Algorithm, ErrorKind, KeyId, KeyType, PublicKey, RemoteSigner};
use serde::Deserialize;
use support::snowflake_sql_api::{FakeSnowflake, Registration, fixed_clock, system_clock};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snowflake");

#[derive(Deserialize)]
struct Vectors {
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    alter_user_value: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    account: String,
    user: String,
    iat: u64,
    exp: u64,
    iss: String,
    sub: String,
    token: String,
}

fn vectors(file: &str) -> Vectors {
    let text = std::fs::read_to_string(Path::new(DATA).join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The connector's own vectors and the extra ones made with the same connector.
fn all_cases() -> Vec<Case> {
    let mut cases = vectors("connector_vectors.json").cases;
    cases.extend(vectors("extra_vectors.json").cases);
    cases
}

/// A 0600 copy of the vectors' key: git does not keep file modes, and key files readable by
/// others are refused.
fn private_key_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rsa_key.p8");
    std::fs::copy(Path::new(DATA).join("rsa_key.p8"), &path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, path)
}

fn vector_signer() -> (tempfile::TempDir, Arc<dyn RemoteSigner>) {
    let (dir, path) = private_key_copy();
    (dir, Arc::new(LocalSigner::open(&path).unwrap()))
}

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Reproduces every vector byte for byte with `signer`, which must hold the vectors' key (a
/// local file, or the same key in a Key Vault).
pub async fn check_connector_vectors(signer: Arc<dyn RemoteSigner>) {
    let expected = vectors("connector_vectors.json");
    assert_eq!(
        signer.public_key().snowflake_fingerprint(),
        expected.fingerprint
    );
    for case in all_cases() {
        let auth = KeyPairAuth::new(signer.clone(), &case.account, &case.user).unwrap();
        assert_eq!(auth.fingerprint(), expected.fingerprint);
        assert_eq!(auth.issuer(), case.iss, "{} / {}", case.account, case.user);
        assert_eq!(auth.subject(), case.sub);
        let token = auth
            .token_at(at(case.iat), Duration::from_secs(case.exp - case.iat))
            .await
            .unwrap();
        assert_eq!(
            token.as_str(),
            case.token,
            "{} / {}",
            case.account,
            case.user
        );
        assert_eq!(token.issued_at(), at(case.iat));
        assert_eq!(token.expires_at(), at(case.exp));
    }
    let statement = alter_user_statement("jdoe", signer.public_key(), KeySlot::First).unwrap();
    assert_eq!(
        statement,
        format!(
            "ALTER USER jdoe SET RSA_PUBLIC_KEY='{}';",
            expected.alter_user_value
        )
    );
}

#[tokio::test]
async fn connector_vectors_with_a_local_key() {
    let (_dir, signer) = vector_signer();
    check_connector_vectors(signer).await;
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_remote-signer"))
}

fn run_cli(args: &[&str]) -> (i32, String, String) {
    run_cli_with_env(args, &[])
}

fn run_cli_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = cli().args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn connector_vectors_from_the_cli() {
    let (_dir, key) = private_key_copy();
    check_cli_vectors(key.to_str().unwrap(), &[], &[]);
}

/// Reproduces every vector byte for byte with the built `remote-signer` binary; `key` is a
/// KEYREF to the vectors' key (a 0600 file, or the same key in a Key Vault with `env` naming
/// the credentials and CA), `key_args` any further key options.
pub fn check_cli_vectors(key: &str, key_args: &[&str], env: &[(&str, &str)]) {
    let run_cli = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend_from_slice(key_args);
        run_cli_with_env(&args, env)
    };
    for case in all_cases() {
        let (iat, lifetime) = (case.iat.to_string(), (case.exp - case.iat).to_string());
        let (code, stdout, stderr) = run_cli(&[
            "snowflake",
            "jwt",
            "--key",
            key,
            "--account",
            &case.account,
            "--user",
            &case.user,
            "--lifetime",
            &lifetime,
            "--issued-at",
            &iat,
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, format!("{}\n", case.token), "{}", case.account);
    }
    let expected = vectors("connector_vectors.json");
    let (code, stdout, _) = run_cli(&["fingerprint", "--key", key]);
    assert_eq!((code, stdout), (0, format!("{}\n", expected.fingerprint)));
    for (slot, property) in [
        (None, "RSA_PUBLIC_KEY"),
        (Some("1"), "RSA_PUBLIC_KEY"),
        (Some("2"), "RSA_PUBLIC_KEY_2"),
    ] {
        let mut args = vec!["snowflake", "alter-user", "--key", key, "--user", "jdoe"];
        args.extend(slot.map(|s| ["--slot", s]).into_iter().flatten());
        let (code, stdout, stderr) = run_cli(&args);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stdout,
            format!(
                "ALTER USER jdoe SET {property}='{}';\n",
                expected.alter_user_value
            )
        );
    }
}

#[test]
fn cli_default_lifetime_is_the_connectors_sixty_seconds() {
    let (_dir, key) = private_key_copy();
    let case = &vectors("connector_vectors.json").cases[0];
    let (code, stdout, _) = run_cli(&[
        "snowflake",
        "jwt",
        "--key",
        key.to_str().unwrap(),
        "--account",
        &case.account,
        "--user",
        &case.user,
        "--issued-at",
        &case.iat.to_string(),
    ]);
    assert_eq!((code, stdout), (0, format!("{}\n", case.token)));
}

#[test]
fn cli_refusals_exit_2_with_one_clear_line() {
    let (dir, key) = private_key_copy();
    let key = key.to_str().unwrap();
    let ed_key = dir.path().join("ed.pem");
    LocalSigner::generate_to_file(KeyType::Ed25519, &ed_key).unwrap();
    let ed_key = ed_key.to_str().unwrap();
    let jwt = |key: &str, account: &str, user: &str, extra: &[&str]| {
        let mut args = vec![
            "snowflake",
            "jwt",
            "--key",
            key,
            "--account",
            account,
            "--user",
            user,
        ];
        args.extend_from_slice(extra);
        run_cli(&args)
    };
    for ((code, stdout, stderr), needle) in [
        (
            jwt(key, "myorg.myaccount", "jdoe", &[]),
            "org-account form: MYORG-MYACCOUNT",
        ),
        (jwt(key, "xy12345.global", "jdoe", &[]), "connection_group"),
        (jwt(key, "", "jdoe", &[]), "empty account"),
        (jwt(key, "myorg-myaccount", "", &[]), "empty user"),
        (
            jwt(key, "myorg-myaccount", "jdoe", &["--lifetime", "3601"]),
            "one hour",
        ),
        (
            jwt(key, "myorg-myaccount", "jdoe", &["--lifetime", "0"]),
            "lifetime",
        ),
        (
            jwt(ed_key, "myorg-myaccount", "jdoe", &[]),
            "needs an RSA, EC P-256 or EC P-384 key",
        ),
        (
            run_cli(&["snowflake", "alter-user", "--key", ed_key, "--user", "jdoe"]),
            "RSA, EC P-256 and EC P-384",
        ),
    ] {
        assert_eq!(code, 2, "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("remote-signer: error: "), "{stderr}");
    }
    let (code, _, _) = run_cli(&[
        "snowflake",
        "alter-user",
        "--key",
        key,
        "--user",
        "jdoe",
        "--slot",
        "3",
    ]);
    assert_eq!(code, 2);
}

#[tokio::test]
async fn library_refusals() {
    let (_dir, rsa) = vector_signer();
    let kind = |r: remote_signer::Result<KeyPairAuth>| r.unwrap_err().kind();

    let k256: Arc<dyn RemoteSigner> = Arc::new(PublicOnly {
        id: KeyId::new("k256"),
        public: k256_public(),
    });
    let err = KeyPairAuth::new(k256.clone(), "myorg-myaccount", "jdoe").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey);
    assert!(
        err.to_string()
            .contains("needs an RSA, EC P-256 or EC P-384 key"),
        "{err}"
    );
    let ed: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::generate(KeyType::Ed25519).unwrap());
    assert_eq!(
        kind(KeyPairAuth::new(ed, "myorg-myaccount", "jdoe")),
        ErrorKind::UnsupportedKey
    );
    assert_eq!(
        alter_user_statement("jdoe", k256.public_key(), KeySlot::First)
            .unwrap_err()
            .kind(),
        ErrorKind::UnsupportedKey
    );

    for (account, user) in [
        ("", "jdoe"),
        ("myorg-myaccount", ""),
        ("myorg-myaccount", " "),
    ] {
        assert_eq!(
            kind(KeyPairAuth::new(rsa.clone(), account, user)),
            ErrorKind::InvalidInput
        );
    }

    let err = KeyPairAuth::new(rsa.clone(), "myorg.myaccount", "jdoe").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("use the org-account form: MYORG-MYACCOUNT"),
        "{err}"
    );
    // A locator with region and cloud is the same shape but is accepted and cut (as in the vectors).
    let auth = KeyPairAuth::new(rsa.clone(), "xy12345.us-east-2.aws", "jdoe").unwrap();
    assert_eq!(auth.account(), "XY12345");

    let auth = KeyPairAuth::new(rsa.clone(), "myorg-myaccount", "jdoe").unwrap();
    for lifetime in [
        Duration::from_secs(3601),
        Duration::ZERO,
        Duration::from_millis(59_500),
    ] {
        let err = auth
            .token_at(at(1_700_000_000), lifetime)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{lifetime:?}");
    }
    assert!(
        auth.token_at(at(1_700_000_000), Duration::from_secs(3600))
            .await
            .is_ok()
    );
    assert!(
        SqlApiTokens::with_lifetime(
            auth.clone(),
            Duration::from_secs(3601),
            Duration::from_secs(60)
        )
        .is_err()
    );
    assert!(
        SqlApiTokens::with_lifetime(
            auth.clone(),
            Duration::from_secs(600),
            Duration::from_secs(600)
        )
        .is_err()
    );
}

#[tokio::test]
async fn global_account_names_drop_the_connection_group() {
    let (_dir, signer) = vector_signer();
    for (account, expected) in [
        ("xy12345-mygroup.global", "XY12345"),
        ("myorg-myaccount-mygroup.global", "MYORG-MYACCOUNT"),
        ("MyOrg-MyAccount-MyGroup.Global", "MYORG-MYACCOUNT"),
    ] {
        let auth = KeyPairAuth::new(signer.clone(), account, "jdoe").unwrap();
        assert_eq!(auth.subject(), format!("{expected}.JDOE"));
    }
    // Without a connection group there is nothing to drop, and no connector agrees on the result.
    for account in ["xy12345.global", "-mygroup.global"] {
        let err = KeyPairAuth::new(signer.clone(), account, "jdoe").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains("<account>-<connection_group>.global"),
            "{err}"
        );
    }
}

#[test]
fn tokens_and_auth_do_not_show_secrets_in_debug() {
    let (_dir, signer) = vector_signer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let auth = KeyPairAuth::new(signer, "myorg-myaccount", "jdoe").unwrap();
    let token = rt.block_on(auth.login_token_at(at(1_700_000_000))).unwrap();
    let debug = format!("{token:?} {auth:?}");
    let signature = token.as_str().rsplit('.').next().unwrap();
    assert!(!debug.contains(signature), "{debug}");
    assert!(!debug.contains("eyJ"), "{debug}");
    let headers = token.sql_api_headers();
    assert_eq!(
        headers[0],
        ("Authorization", format!("Bearer {}", token.as_str()))
    );
    assert_eq!(headers[1], (TOKEN_TYPE_HEADER, KEYPAIR_JWT.to_string()));
    assert_eq!(TOKEN_TYPE_HEADER, "X-Snowflake-Authorization-Token-Type");
}

/// A signer over `key` that counts its calls and how many run at once; each signature takes
/// a little while (a stand-in for a round trip to the key service), so that concurrent
/// callers really overlap.
fn counting(key: Arc<dyn RemoteSigner>) -> Arc<FaultySigner> {
    FaultySigner::with_delay(key, Duration::from_millis(5))
}

fn client_trusting(server: &FakeSnowflake) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent("remote-signer-test/1")
        .tls_certs_only([reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// One SQL API request; returns the HTTP status.
async fn execute(client: &reqwest::Client, url: &str, headers: &[(&str, String)]) -> u16 {
    let mut request = client
        .post(format!("{url}/api/v2/statements"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(r#"{"statement":"SELECT 1","timeout":60}"#);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

fn registration(public_keys: Vec<PublicKey>) -> Registration {
    Registration {
        account: "MYORG-MYACCOUNT".into(),
        user: "JDOE".into(),
        public_keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_sql_api_requests_signs_once_per_token_lifetime() {
    const TASKS: u64 = 50;
    const HOUR: u64 = 3600;
    const LIFETIME: u64 = 600;
    const RENEW_BEFORE: u64 = 60;
    // 180 s divides the 540 s a token serves, so every renewal instant (540, 1080, ... 3240 s) is
    // a step where all tasks ask at once, and each token also serves the two steps after its
    // first: 20 steps, 1,000 requests, each a JWT the stand-in verifies (that verification is
    // the test's cost, so more steps would add CPU and no case).
    const STEP: u64 = 180;
    const STEPS: u64 = HOUR / STEP;
    const REQUESTS: u64 = TASKS * STEPS;
    const START: u64 = 1_700_000_000;
    assert_eq!(
        (LIFETIME - RENEW_BEFORE) % STEP,
        0,
        "every renewal is a step"
    );

    let (_dir, key) = vector_signer();
    let signer = counting(key.clone());
    let clock = Arc::new(AtomicU64::new(START));
    let server = FakeSnowflake::start(
        registration(vec![key.public_key().clone()]),
        fixed_clock(clock.clone()),
    )
    .await;
    let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
    let tokens = SqlApiTokens::with_lifetime(
        auth,
        Duration::from_secs(LIFETIME),
        Duration::from_secs(RENEW_BEFORE),
    )
    .unwrap();
    let client = client_trusting(&server);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (tokens, client, clock, barrier, url) = (
            tokens.clone(),
            client.clone(),
            clock.clone(),
            barrier.clone(),
            server.url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for step in 0..STEPS {
                // Every task makes its request of this step at the same simulated time.
                let now = START + step * STEP;
                if barrier.wait().await.is_leader() {
                    clock.store(now, Ordering::SeqCst);
                }
                barrier.wait().await;
                let token = tokens.bearer_token_at(at(now)).await.unwrap();
                if execute(&client, &url, &token.sql_api_headers()).await != 200 {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }

    assert_eq!(refused, 0, "{:?}", server.rejections());
    assert_eq!(server.accepted(), REQUESTS);
    // A token serves LIFETIME - RENEW_BEFORE seconds, so an hour needs ceil(3600 / 540) = 7.
    let periods = HOUR.div_ceil(LIFETIME - RENEW_BEFORE);
    assert_eq!(periods, 7);
    assert_eq!(signer.calls(), periods);
    assert_eq!(server.distinct_tokens() as u64, periods);
    assert_eq!(signer.max_in_flight(), 1);
}

#[tokio::test]
async fn the_default_cache_signs_twice_an_hour_and_the_login_method_every_call() {
    let (_dir, key) = vector_signer();
    let signer = counting(key);
    let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
    let tokens = SqlApiTokens::new(auth.clone());
    let start = 1_700_000_000;
    // One token for 3600 s, renewed 300 s ahead: issued at 0 and at 3300.
    let mut last: Option<Token> = None;
    let mut changes = 0;
    for second in (0..3600).step_by(10) {
        let token = tokens.bearer_token_at(at(start + second)).await.unwrap();
        assert!(token.expires_at() > at(start + second + 299));
        if last.as_ref().map(Token::as_str) != Some(token.as_str()) {
            changes += 1;
        }
        last = Some(token);
    }
    assert_eq!((signer.calls(), changes), (2, 2));

    let before = signer.calls();
    for i in 0..20 {
        let token = auth.login_token_at(at(start + i)).await.unwrap();
        assert_eq!(token.expires_at(), at(start + i + 60));
    }
    // Same time twice: still a fresh signature each call.
    auth.login_token_at(at(start)).await.unwrap();
    assert_eq!(signer.calls() - before, 21);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_old_token_until_it_expires_then_recovers() {
    let (_dir, key) = vector_signer();
    let signer = counting(key);
    let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
    let tokens =
        SqlApiTokens::with_lifetime(auth, Duration::from_secs(600), Duration::from_secs(60))
            .unwrap();
    let start = 1_700_000_000;
    let first = tokens.bearer_token_at(at(start)).await.unwrap();

    signer.set(Mode::Down);
    // Inside the renewal margin: the renewal fails, the old token is still good.
    let t = tokens.bearer_token_at(at(start + 550)).await.unwrap();
    assert_eq!(t.as_str(), first.as_str());
    assert_eq!(signer.calls(), 2);
    // No new attempt within 5 s of a failure.
    let t = tokens.bearer_token_at(at(start + 553)).await.unwrap();
    assert_eq!(t.as_str(), first.as_str());
    assert_eq!(signer.calls(), 2);
    // Expired and still failing: the error says what failed.
    let err = tokens.bearer_token_at(at(start + 600)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_transient());
    // The service is back: the next call renews.
    signer.set(Mode::Working);
    let t = tokens.bearer_token_at(at(start + 610)).await.unwrap();
    assert_ne!(t.as_str(), first.as_str());
    assert_eq!(t.issued_at(), at(start + 610));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_keep_the_current_token_while_a_renewal_is_in_flight() {
    let (_dir, key) = vector_signer();
    let signer = counting(key);
    let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
    let tokens =
        SqlApiTokens::with_lifetime(auth, Duration::from_secs(600), Duration::from_secs(60))
            .unwrap();
    let start = 1_700_000_000;
    let first = tokens.bearer_token_at(at(start)).await.unwrap();

    // The key service stalls during the renewal.
    signer.set(Mode::Stall);
    let renewing = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.bearer_token_at(at(start + 550)).await }
    });
    signer.entered().await;
    // Others are not held up: the current token is still valid. (The timeout only turns a
    // regression into a failure instead of a hang.)
    let during = tokio::time::timeout(
        Duration::from_secs(30),
        tokens.bearer_token_at(at(start + 551)),
    )
    .await
    .expect("a caller waited for the renewal although the current token was valid")
    .unwrap();
    assert_eq!(during.as_str(), first.as_str());
    signer.set(Mode::Working);
    signer.release();
    let renewed = renewing.await.unwrap().unwrap();
    assert_eq!(renewed.issued_at(), at(start + 550));
    let after = tokens.bearer_token_at(at(start + 552)).await.unwrap();
    assert_eq!(after.as_str(), renewed.as_str());
    assert_eq!(signer.calls(), 2);
}

/// Runs the example with `args` (without blocking the runtime that serves the stand-in);
/// returns its exit code, stdout and stderr.
async fn run_example(args: Vec<String>) -> (i32, String, String) {
    let example = support::examples::path("snowflake_sql");
    let out = tokio::task::spawn_blocking(move || Command::new(example).args(args).output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_example_runs_a_statement_against_a_local_sql_api() {
    let (dir, key_path) = private_key_copy();
    let key = LocalSigner::open(&key_path).unwrap();
    // The user has a second, older key in RSA_PUBLIC_KEY; ours is in RSA_PUBLIC_KEY_2.
    let other = support::keys::rsa(0);
    let server = FakeSnowflake::start(
        registration(vec![other.public_key().clone(), key.public_key().clone()]),
        system_clock(),
    )
    .await;
    let ca_cert = dir.path().join("ca.pem");
    std::fs::write(&ca_cert, &server.ca_pem).unwrap();
    let args = |url: &str| -> Vec<String> {
        [
            "--key",
            key_path.to_str().unwrap(),
            "--account",
            "myorg-myaccount",
            "--user",
            "jdoe",
            "--url",
            url,
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "SELECT 1",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    };
    let (code, stdout, stderr) = run_example(args(&server.url)).await;
    assert_eq!(code, 0, "{stderr}");
    // One row, `["1"]`, and the SQL API's success code.
    assert_eq!(stdout, "[\"1\"]\n");
    assert!(stderr.contains("090001"), "{stderr}");
    assert_eq!((server.accepted(), server.rejected()), (1, 0));

    // A user whose registered keys do not include ours: the server refuses, the example says so.
    let stranger = FakeSnowflake::start(
        registration(vec![other.public_key().clone()]),
        system_clock(),
    )
    .await;
    std::fs::write(&ca_cert, &stranger.ca_pem).unwrap();
    let (code, stdout, stderr) = run_example(args(&stranger.url)).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("401") && stderr.contains("390144"),
        "{stderr}"
    );
    assert_eq!(
        stranger.rejections(),
        ["iss names a key that is not registered on the user"]
    );
}

#[tokio::test]
async fn the_local_sql_api_checks_tokens_as_snowflake_does() {
    let (_dir, key) = vector_signer();
    let now = 1_700_000_000;
    let clock = Arc::new(AtomicU64::new(now));
    let server = FakeSnowflake::start(
        registration(vec![key.public_key().clone()]),
        fixed_clock(clock),
    )
    .await;
    let client = client_trusting(&server);
    let auth = KeyPairAuth::new(key.clone(), "myorg-myaccount", "jdoe").unwrap();
    let other_user = KeyPairAuth::new(key.clone(), "myorg-myaccount", "someone").unwrap();
    let other_account = KeyPairAuth::new(key.clone(), "myorg-other", "jdoe").unwrap();
    let hour = Duration::from_secs(3600);
    let minute = Duration::from_secs(60);

    let good = auth.token_at(at(now - 10), minute).await.unwrap();
    assert_eq!(
        execute(&client, &server.url, &good.sql_api_headers()).await,
        200
    );

    let without_type = [("Authorization", good.bearer())];
    for (headers, why) in [
        (without_type.to_vec(), "KEYPAIR_JWT"),
        (
            auth.token_at(at(now - 7200), hour)
                .await
                .unwrap()
                .sql_api_headers()
                .to_vec(),
            "older than an hour",
        ),
        (
            auth.token_at(at(now - 120), minute)
                .await
                .unwrap()
                .sql_api_headers()
                .to_vec(),
            "expired",
        ),
        (
            auth.token_at(at(now + 600), minute)
                .await
                .unwrap()
                .sql_api_headers()
                .to_vec(),
            "future",
        ),
        (
            other_user
                .token_at(at(now), minute)
                .await
                .unwrap()
                .sql_api_headers()
                .to_vec(),
            "iss/sub",
        ),
        (
            other_account
                .token_at(at(now), minute)
                .await
                .unwrap()
                .sql_api_headers()
                .to_vec(),
            "iss/sub",
        ),
    ] {
        assert_eq!(execute(&client, &server.url, &headers).await, 401, "{why}");
        let last = server.rejections().pop().unwrap();
        assert!(last.contains(why), "{why:?} not in {last:?}");
    }
    // Claims with another token's signature: the signature check fails.
    let mut parts: Vec<&str> = good.as_str().split('.').collect();
    let other_sig = auth.token_at(at(now - 11), minute).await.unwrap();
    parts[2] = other_sig.as_str().rsplit('.').next().unwrap();
    let forged = parts.join(".");
    let headers = [
        ("Authorization", format!("Bearer {forged}")),
        (TOKEN_TYPE_HEADER, KEYPAIR_JWT.to_string()),
    ];
    assert_eq!(execute(&client, &server.url, &headers).await, 401);
    assert!(server.rejections().pop().unwrap().contains("signature"));
    assert_eq!(server.accepted(), 1);
}

/// The same vectors with the key held by the Key Vault emulator, through the official SDK.
#[cfg(feature = "azure")]
mod key_vault {
    use super::*;
    use remote_signer::backend::azure::KeyVaultSigner;
    use support::keyvault::{Emulator, EmulatorSigners as _};

    fn emulator_with_vector_key() -> (Emulator, String) {
        let emu = Emulator::start();
        let pem = std::fs::read_to_string(Path::new(DATA).join("rsa_key.p8")).unwrap();
        let version = emu.import_pem("snowflake", &pem);
        let url = emu.key_url("snowflake", Some(&version));
        (emu, url)
    }

    #[tokio::test]
    async fn connector_vectors_with_the_key_in_key_vault() {
        let (emu, url) = emulator_with_vector_key();
        let env: Vec<_> = emu
            .env()
            .into_iter()
            .filter(|(name, _)| name != "SSL_CERT_FILE")
            .collect();
        let signer = KeyVaultSigner::builder(&url)
            .environment(env)
            .add_root_certificate_pem(emu.ca_pem())
            // 127.0.0.1 is not under the challenge's vault.azure.net.
            .verify_challenge_resource(false)
            .build()
            .await
            .unwrap();
        let before = emu.count("sign");
        check_connector_vectors(Arc::new(signer)).await;
        // One managed signature per token, none for names, fingerprints or ALTER USER.
        assert_eq!(emu.count("sign") - before, all_cases().len() as u64);
    }

    #[test]
    fn connector_vectors_from_the_cli_with_the_key_in_key_vault() {
        let (emu, url) = emulator_with_vector_key();
        let env = emu.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        check_cli_vectors(&url, &["--no-verify-challenge-resource"], &env);
    }

    /// Key Vault EC keys (ES256, ES384) give the connector's signing input too.
    #[tokio::test]
    async fn ec_keys_in_key_vault_sign_what_the_connector_signs() {
        let text = std::fs::read_to_string(Path::new(DATA).join("ec_vectors.json")).unwrap();
        let vectors: EcVectors = serde_json::from_str(&text).unwrap();
        let emu = Emulator::start();
        for key in vectors.keys {
            let pem = std::fs::read_to_string(Path::new(DATA).join(&key.key)).unwrap();
            let name = key.alg.to_lowercase();
            emu.import_pem(&name, &pem);
            let signer = emu.signer(&name).await;
            assert_eq!(signer.public_key().snowflake_fingerprint(), key.fingerprint);
            let case = &key.cases[0];
            let before = emu.count("sign");
            let token = KeyPairAuth::new(signer.clone(), &case.account, &case.user)
                .unwrap()
                .token_at(at(case.iat), Duration::from_secs(case.exp - case.iat))
                .await
                .unwrap();
            assert_eq!(emu.count("sign") - before, 1);
            let (input, signature) = token.as_str().rsplit_once('.').unwrap();
            assert_eq!(input, case.signing_input);
            let alg: Algorithm = key.alg.parse().unwrap();
            let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            signer
                .public_key()
                .verify(alg, input.as_bytes(), &bytes)
                .unwrap();
        }
    }
}

// ---- EC keys (ES256 / ES384), against the official connector ----

#[derive(Deserialize)]
struct EcVectors {
    keys: Vec<EcKey>,
}

#[derive(Deserialize)]
struct EcKey {
    key: String,
    alg: String,
    fingerprint: String,
    alter_user_value: String,
    cases: Vec<EcCase>,
}

#[derive(Deserialize)]
struct EcCase {
    account: String,
    user: String,
    iat: u64,
    exp: u64,
    iss: String,
    sub: String,
    signing_input: String,
    token: String,
}

/// A 0600 copy of one of the vectors' EC keys.
fn ec_key_copy(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(Path::new(DATA).join(name), &path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

#[tokio::test]
async fn ec_keys_sign_what_the_python_connector_signs() {
    let text = std::fs::read_to_string(Path::new(DATA).join("ec_vectors.json")).unwrap();
    let vectors: EcVectors = serde_json::from_str(&text).unwrap();
    assert_eq!(vectors.keys.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    for key in vectors.keys {
        let path = ec_key_copy(dir.path(), &key.key);
        let signer: Arc<dyn RemoteSigner> = Arc::new(LocalSigner::open(&path).unwrap());
        let alg: Algorithm = key.alg.parse().unwrap();
        assert_eq!(signer.public_key().snowflake_fingerprint(), key.fingerprint);
        let pem = signer.public_key().to_pem();
        let decoding = jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        for case in &key.cases {
            let auth = KeyPairAuth::new(signer.clone(), &case.account, &case.user).unwrap();
            assert_eq!(auth.algorithm(), alg);
            assert_eq!(auth.issuer(), case.iss);
            assert_eq!(auth.subject(), case.sub);
            let token = auth
                .token_at(at(case.iat), Duration::from_secs(case.exp - case.iat))
                .await
                .unwrap();
            // ECDSA signatures are randomized: the signing input is the connector's, byte for
            // byte, and both signatures verify with the key.
            let (input, signature) = token.as_str().rsplit_once('.').unwrap();
            assert_eq!(
                input, case.signing_input,
                "{} / {}",
                case.account, case.user
            );
            let (connector_input, connector_signature) = case.token.rsplit_once('.').unwrap();
            assert_eq!(connector_input, case.signing_input);
            for (input, signature) in [(input, signature), (connector_input, connector_signature)] {
                let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
                signer
                    .public_key()
                    .verify(alg, input.as_bytes(), &bytes)
                    .unwrap();
            }
            let mut validation = jsonwebtoken::Validation::new(key.alg.parse().unwrap());
            validation.validate_exp = false;
            validation.set_issuer(&[&case.iss]);
            validation.sub = Some(case.sub.clone());
            validation.set_required_spec_claims(&["iss", "sub", "iat", "exp"]);
            jsonwebtoken::decode::<serde_json::Value>(token.as_str(), &decoding, &validation)
                .unwrap();

            // The CLI prints the same signing input.
            let (code, stdout, stderr) = run_cli(&[
                "snowflake",
                "jwt",
                "--key",
                path.to_str().unwrap(),
                "--account",
                &case.account,
                "--user",
                &case.user,
                "--lifetime",
                &(case.exp - case.iat).to_string(),
                "--issued-at",
                &case.iat.to_string(),
            ]);
            assert_eq!(code, 0, "{stderr}");
            assert!(stdout.starts_with(&format!("{}.", case.signing_input)));
        }
        // The SQL API token cache takes EC keys too.
        let auth = KeyPairAuth::new(signer.clone(), "myorg-myaccount", "jdoe").unwrap();
        let bearer = SqlApiTokens::new(auth).bearer_token().await.unwrap();
        let (input, signature) = bearer.as_str().rsplit_once('.').unwrap();
        let header = |input: &str| input.split('.').next().unwrap().to_string();
        assert_eq!(header(input), header(&key.cases[0].signing_input));
        let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signer
            .public_key()
            .verify(alg, input.as_bytes(), &bytes)
            .unwrap();
        let statement = alter_user_statement("jdoe", signer.public_key(), KeySlot::Second).unwrap();
        assert_eq!(
            statement,
            format!(
                "ALTER USER jdoe SET RSA_PUBLIC_KEY_2='{}';",
                key.alter_user_value
            )
        );
        let (code, stdout, _) = run_cli(&[
            "snowflake",
            "alter-user",
            "--key",
            path.to_str().unwrap(),
            "--user",
            "jdoe",
        ]);
        assert_eq!(code, 0);
        assert_eq!(
            stdout,
            format!(
                "ALTER USER jdoe SET RSA_PUBLIC_KEY='{}';\n",
                key.alter_user_value
            )
        );
    }
}
