//! The ssh-agent against real OpenSSH: `ssh-add`, `ssh` logging in to a throwaway sshd on
//! 127.0.0.1, `ssh-keygen -Y sign/verify`, git commit signing, and raw protocol abuse.
//!
//! Every test takes its keys as `Arc<dyn RemoteSigner>`, so any backend can be dropped in.

use crate::support;

use support::faulty::{FaultySigner, Mode};
#[cfg(feature = "azure")]
use support::keyvault;
use support::ssh as ssh_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use remote_signer::backend::local::LocalSigner;
use remote_signer::clock::ManualClock;
use remote_signer::ssh::{Agent, CertificateOptions};
use remote_signer::{KeyType, RemoteSigner};
use ssh_support::{RunningAgent, Sshd, captured_log, current_user, key_blob, sign_request};

const FAILURE: [u8; 1] = [5];

/// What `ssh` signs to log in with `key_blob` (RFC 4252 section 7): the `publickey` method,
/// or `publickey-hostbound-v00@openssh.com` with a host key when `host_key` is given.
fn userauth_data(key_blob: &[u8], algorithm: &str, host_key: Option<&[u8]>) -> Vec<u8> {
    use ssh_encoding::Encode;
    let mut data = Vec::new();
    [0x5au8; 32].as_slice().encode(&mut data).unwrap();
    data.push(50);
    current_user().encode(&mut data).unwrap();
    "ssh-connection".encode(&mut data).unwrap();
    let method = if host_key.is_some() {
        "publickey-hostbound-v00@openssh.com"
    } else {
        "publickey"
    };
    method.encode(&mut data).unwrap();
    data.push(1);
    algorithm.encode(&mut data).unwrap();
    key_blob.encode(&mut data).unwrap();
    if let Some(host_key) = host_key {
        host_key.encode(&mut data).unwrap();
    }
    data
}

/// The algorithm `ssh` names for `key_blob` with the sign request's `flags`.
fn algorithm_for(key_blob: &[u8], flags: u32) -> String {
    use ssh_encoding::Decode;
    let name = String::decode(&mut &key_blob[..]).unwrap();
    match (name.as_str(), flags) {
        ("ssh-rsa", 2) => "rsa-sha2-256".into(),
        ("ssh-rsa", 4) => "rsa-sha2-512".into(),
        _ => name,
    }
}

/// A sign request for a `publickey` login with `key_blob`, and the data it asks to sign.
fn login_request(key_blob: &[u8], flags: u32) -> (Vec<u8>, Vec<u8>) {
    let data = userauth_data(key_blob, &algorithm_for(key_blob, flags), None);
    (sign_request(key_blob, &data, flags), data)
}

fn local(key_type: KeyType) -> Arc<dyn RemoteSigner> {
    Arc::new(support::keys::any(key_type, 0))
}

fn openssh(signer: &dyn RemoteSigner) -> String {
    signer.public_key().to_openssh("").unwrap()
}

/// The managed keys the login tests use: RSA, EC P-256 and Ed25519.
fn managed_keys() -> Vec<(Arc<dyn RemoteSigner>, &'static str)> {
    vec![
        (local(KeyType::Rsa), "rsa key"),
        (local(KeyType::P256), "p256 key"),
        (local(KeyType::Ed25519), "ed25519 key"),
    ]
}

fn agent_for(keys: &[(Arc<dyn RemoteSigner>, &'static str)]) -> RunningAgent {
    let mut builder = Agent::builder();
    for (signer, comment) in keys {
        builder = builder.key_with_comment(Arc::clone(signer), *comment);
    }
    RunningAgent::start(builder.build().unwrap())
}

#[test]
fn managed_keys_are_listed_and_log_in_with_every_algorithm() {
    let keys = managed_keys();
    let agent = agent_for(&keys);
    let listed = agent.list();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (signer, comment) in &keys {
        let expected = format!("{} {comment}", openssh(&**signer));
        assert!(listed.contains(&expected), "{expected} not in {listed:?}");
    }

    let authorized: Vec<String> = keys.iter().map(|(s, _)| openssh(&**s)).collect();
    let sshd = Sshd::start(&authorized, &[]);
    for algorithm in [
        "rsa-sha2-256",
        "rsa-sha2-512",
        "ecdsa-sha2-nistp256",
        "ssh-ed25519",
    ] {
        sshd.assert_login(
            &agent.socket,
            &[&format!("PubkeyAcceptedAlgorithms={algorithm}")],
        );
    }

    // Both user-authentication methods: OpenSSH's hostbound one (the default since 8.9) and
    // plain `publickey` (RFC 4252), which the agent recognise and sign alike.
    captured_log();
    for method in ["host-bound", "unbound"] {
        sshd.assert_login(&agent.socket, &[&format!("PubkeyAuthentication={method}")]);
    }
    let logged = captured_log();
    for kind in [
        "signing a hostbound user-authentication request",
        "signing a user-authentication request",
    ] {
        assert!(
            logged.iter().any(|l| l.contains(kind)),
            "{kind}: {logged:?}"
        );
    }

    // A key the server does not know gets nowhere.
    let stranger = agent_for(&[(local(KeyType::Ed25519), "stranger")]);
    let out = sshd.login(&stranger.socket, &current_user(), &[]);
    assert!(!out.status.success());
}

#[test]
fn rsa_answers_exactly_the_requested_algorithm_and_refuses_sha1() {
    let rsa = local(KeyType::Rsa);
    let agent = agent_for(&[(Arc::clone(&rsa), "rsa")]);
    let blob = key_blob(&*rsa);
    let mut client = agent.connect();
    for (flags, name) in [(2u32, "rsa-sha2-256"), (4, "rsa-sha2-512")] {
        let (request, data) = login_request(&blob, flags);
        let answer = client.request(&request);
        assert_eq!(answer[0], 14);
        let signature = ssh_key::Signature::try_from(&answer[5..]).unwrap();
        assert_eq!(signature.algorithm().as_str(), name);
        let alg = if flags == 2 {
            remote_signer::Algorithm::RS256
        } else {
            remote_signer::Algorithm::RS512
        };
        rsa.public_key()
            .verify(alg, &data, signature.as_bytes())
            .unwrap();
    }
    // SHA-1 ssh-rsa (no flags) is refused, and the connection goes on.
    assert_eq!(client.request(&login_request(&blob, 0).0), FAILURE);
    assert_eq!(client.request(&[11])[0], 12);
}

fn keygen_sign_and_verify(socket: &Path, public_line: &str, dir: &Path) {
    let public = dir.join("key.pub");
    let message = dir.join("message.txt");
    std::fs::write(&public, format!("{public_line}\n")).unwrap();
    std::fs::write(&message, b"release v1.0\n").unwrap();
    let out = Command::new("ssh-keygen")
        .env("SSH_AUTH_SOCK", socket)
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(&public)
        .arg(&message)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed = dir.join("allowed_signers");
    std::fs::write(&allowed, format!("signer@example.com {public_line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "file",
            "-I",
            "signer@example.com",
            "-f",
        ])
        .arg(&allowed)
        .arg("-s")
        .arg(dir.join("message.txt.sig"))
        .stdin(std::fs::File::open(&message).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(dir.join("message.txt.sig")).unwrap();
}

#[test]
fn ssh_keygen_signatures_made_through_the_agent_verify() {
    let mut keys = managed_keys();
    keys.push((local(KeyType::P384), "p384 key"));
    let agent = agent_for(&keys);
    let dir = tempfile::tempdir().unwrap();
    for (signer, _) in &keys {
        keygen_sign_and_verify(&agent.socket, &openssh(&**signer), dir.path());
    }
}

#[test]
fn git_commit_signed_through_the_agent_passes_verify_commit() {
    let signer = local(KeyType::Ed25519);
    let agent = agent_for(&[(Arc::clone(&signer), "git signing key")]);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let public = dir.path().join("signing.pub");
    std::fs::write(&public, format!("{}\n", openssh(&*signer))).unwrap();
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("dev@example.com {}\n", openssh(&*signer))).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&repo)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("SSH_AUTH_SOCK", &agent.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    git(&["init", "-q"]);
    git(&["config", "user.name", "Dev"]);
    git(&["config", "user.email", "dev@example.com"]);
    git(&["config", "gpg.format", "ssh"]);
    git(&["config", "user.signingkey", public.to_str().unwrap()]);
    git(&[
        "config",
        "gpg.ssh.allowedSignersFile",
        allowed.to_str().unwrap(),
    ]);
    std::fs::write(repo.join("README"), "signed\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-S", "-m", "signed through remote-signer"]);
    let verified = git(&["verify-commit", "-v", "HEAD"]);
    assert!(
        verified.contains("Good \"git\" signature for dev@example.com"),
        "{verified}"
    );
}

#[test]
fn certificate_mode_logs_in_through_the_trusted_ca_without_managed_key_calls() {
    let ca = FaultySigner::new(local(KeyType::Rsa));
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(
                ca.clone(),
                CertificateOptions::new([current_user()]).validity(Duration::from_secs(600)),
            )
            .build()
            .unwrap(),
    );
    let listed = agent.list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{listed:?}"
    );
    // The CA key is never offered.
    let ca_line = openssh(&*ca);
    assert!(!listed.iter().any(|l| l.starts_with(&ca_line)));

    let sshd = Sshd::start(&[], &[ca_line]);
    for _ in 0..3 {
        sshd.assert_login(&agent.socket, &[]);
    }
    assert_eq!(ca.calls(), 1, "logins must not call the managed key");
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());

    // Sign requests for the CA key itself are refused, even for a well-formed login.
    let mut client = agent.connect();
    assert_eq!(
        client.request(&login_request(&key_blob(&*ca), 4).0),
        FAILURE
    );
}

#[test]
fn a_certificate_for_another_principal_is_refused_by_sshd() {
    let ca = local(KeyType::P256);
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(Arc::clone(&ca), CertificateOptions::new(["someone-else"]))
            .build()
            .unwrap(),
    );
    let sshd = Sshd::start(&[], &[openssh(&*ca)]);
    let out = sshd.login(&agent.socket, &current_user(), &[]);
    assert!(
        !out.status.success(),
        "login succeeded for another principal"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn minted_certificates_name_the_ca_by_its_thumbprint_not_where_its_key_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca-keys").join("ssh-ca.pem");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    let ca: Arc<dyn RemoteSigner> =
        Arc::new(LocalSigner::generate_to_file(KeyType::P256, &path).unwrap());
    // The CA's own key id says where it lives; that must not reach the certificate.
    let ca_key_id = ca.key_id().to_string();
    assert!(ca_key_id.contains("ssh-ca.pem"), "{ca_key_id}");
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(Arc::clone(&ca), CertificateOptions::new(["deploy"]))
            .build()
            .unwrap(),
    );
    let listed = agent.list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let certificate_file = dir.path().join("id-cert.pub");
    std::fs::write(&certificate_file, format!("{}\n", listed[0])).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&certificate_file)
        .output()
        .expect("run ssh-keygen: install openssh-client (scripts/test does)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Key ID: "))
        .unwrap_or_else(|| panic!("no key id in {text}"))
        .trim_matches('"')
        .to_string();
    assert_eq!(
        key_id,
        format!("remote-signer:{}", ca.public_key().jwk_thumbprint())
    );
    for location in [
        "file:",
        "://",
        "/",
        "ssh-ca",
        "ca-keys",
        &*dir.path().to_string_lossy(),
    ] {
        assert!(!key_id.contains(location), "{key_id} contains {location}");
    }
    assert!(!text.contains(&ca_key_id), "{text}");
}

fn listed_certificate(agent: &RunningAgent) -> Option<ssh_key::Certificate> {
    let listed = agent.list();
    assert!(listed.len() <= 1, "{listed:?}");
    listed
        .first()
        .map(|line| ssh_key::Certificate::from_openssh(line).unwrap())
}

#[test]
fn certificates_are_renewed_once_validity_ends_and_logins_go_on() {
    let ca = FaultySigner::new(local(KeyType::Ed25519));
    // The agent's clock is moved past the first certificate's end instead of waiting for it.
    // sshd checks certificates against the real clock, so both certificates are backdated to
    // cover the real present: the first ends 10 minutes from now, the second starts before now.
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(
                ca.clone(),
                CertificateOptions::new([current_user()])
                    .validity(Duration::from_secs(600))
                    .backdate(Duration::from_secs(3600)),
            )
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let sshd = Sshd::start(&[], &[openssh(&*ca)]);
    let first = listed_certificate(&agent).expect("a certificate");
    sshd.assert_login(&agent.socket, &[]);
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(first.valid_before() + 1));
    // Past its end the first certificate is never listed again; the renewal the listing
    // starts lands in the background (polled: minting takes real time, not clock time).
    let second = wait_for(|| listed_certificate(&agent).filter(|c| c.serial() != first.serial()))
        .expect("a renewed certificate");
    assert!(second.serial() > first.serial());
    assert!(second.valid_before() > first.valid_before());
    sshd.assert_login(&agent.socket, &[]);
    assert!(ca.calls() >= 2);
}

#[test]
fn certificates_renew_ahead_of_expiry_are_never_listed_expired_and_recover_after_an_outage() {
    let log = captured_log();
    drop(log);
    let start = 1_900_000_000u64;
    let clock = Arc::new(ManualClock::at_unix(start));
    let set = |unix: u64| clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(unix));
    let ca = FaultySigner::new(local(KeyType::P256));
    let agent = RunningAgent::start(
        Agent::builder()
            .certificate_authority(
                ca.clone(),
                CertificateOptions::new(["deploy"]).validity(Duration::from_secs(400)),
            )
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let first = listed_certificate(&agent).expect("a certificate");
    assert_eq!(first.valid_before(), start + 400);
    assert_eq!(first.valid_after(), start - 60);
    assert_eq!(ca.calls(), 1);

    // Inside the validity, before the renewal point: no managed-key call.
    set(start + 200);
    assert_eq!(listed_certificate(&agent).unwrap().serial(), first.serial());
    assert_eq!(ca.calls(), 1);

    // Past the renewal point (a quarter of the validity left): the current certificate is
    // still offered while a new one is minted in the background, once.
    set(start + 350);
    let offered = listed_certificate(&agent).unwrap();
    assert!(offered.serial() >= first.serial());
    let second = wait_for(|| listed_certificate(&agent).filter(|c| c.serial() > first.serial()))
        .expect("renewed ahead of expiry");
    assert_eq!(second.valid_before(), start + 350 + 400);
    assert_eq!(ca.calls(), 2);
    // The previous certificate still signs until it expires (a client may have listed it).
    let mut client = agent.connect();
    assert_eq!(
        client.request(&login_request(&certificate_blob(&first), 0).0)[0],
        14
    );

    // The CA goes down; after expiry the certificate is no longer listed nor used.
    ca.set(Mode::Down);
    set(start + 750);
    assert!(listed_certificate(&agent).is_none());
    assert_eq!(
        client.request(&login_request(&certificate_blob(&second), 0).0),
        FAILURE
    );
    // The renewal the listing started in the background fails, and says why.
    let logged = wait_for(|| {
        captured_log()
            .iter()
            .any(|l| l.contains("cannot renew the certificate") && l.contains("test outage"))
            .then_some(())
    });
    assert!(
        logged.is_some(),
        "the cause is logged: {:?}",
        captured_log()
    );

    // The CA comes back: the agent renews by itself (once the failure is recorded, so the
    // backoff counts from the outage's clock time).
    let failed =
        wait_for(|| (agent.agent.certificate_status()[0].consecutive_failures >= 1).then_some(()));
    assert!(failed.is_some(), "{:?}", agent.agent.certificate_status());
    ca.set(Mode::Working);
    set(start + 760);
    let renewed = wait_for(|| listed_certificate(&agent)).expect("a renewed certificate");
    assert!(renewed.serial() > second.serial());
    assert_eq!(renewed.valid_before(), start + 760 + 400);
}

fn certificate_blob(certificate: &ssh_key::Certificate) -> Vec<u8> {
    use ssh_encoding::Encode;
    let mut blob = Vec::new();
    certificate.encode(&mut blob).unwrap();
    blob
}

/// Retries `f` a bounded number of times (renewal after an outage is throttled to one try
/// every few seconds).
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..100 {
        if let Some(value) = f() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn malformed_unknown_and_oversized_messages_get_failure_and_the_connection_goes_on() {
    let ed25519 = local(KeyType::Ed25519);
    let agent = agent_for(&[(Arc::clone(&ed25519), "ed25519")]);
    let blob = key_blob(&*ed25519);
    let mut client = agent.connect();
    let (valid_sign, payload) = login_request(&blob, 0);

    let mut refused: Vec<(&str, Vec<u8>)> = vec![
        ("empty message", vec![]),
        ("unknown type", vec![200, 1, 2, 3]),
        ("add identity", {
            let mut m = vec![17u8];
            m.extend_from_slice(&[0, 0, 0, 11]);
            m.extend_from_slice(b"ssh-ed25519");
            m
        }),
        ("remove all", vec![19]),
        ("lock", vec![22, 0, 0, 0, 1, b'p']),
        ("extension", vec![27, 0, 0, 0, 4, b'q', b'u', b'e', b'r']),
        ("identities with trailing data", vec![11, 0]),
        (
            "sign request for an unknown key",
            sign_request(b"nope", b"x", 0),
        ),
        (
            "string longer than the message",
            vec![13, 0xff, 0xff, 0xff, 0xf0, 1],
        ),
        ("sign request with trailing data", {
            let mut m = valid_sign.clone();
            m.push(0);
            m
        }),
    ];
    for cut in [1, 3, 5, 20, valid_sign.len() - 1] {
        refused.push(("truncated sign request", valid_sign[..cut].to_vec()));
    }
    for (what, message) in &refused {
        assert_eq!(client.request(message), FAILURE, "{what}");
        assert_eq!(client.request(&[11])[0], 12, "after {what}");
    }

    // Over the 256 KiB cap: skipped unread, refused, and the connection stays in step.
    let oversized = vec![0xAAu8; 300 * 1024];
    assert_eq!(client.request(&oversized), FAILURE);
    let answer = client.request(&valid_sign);
    assert_eq!(answer[0], 14);
    let signature = ssh_key::Signature::try_from(&answer[5..]).unwrap();
    ed25519
        .public_key()
        .verify(
            remote_signer::Algorithm::EdDSA,
            &payload,
            signature.as_bytes(),
        )
        .unwrap();
}

#[test]
fn a_failing_managed_key_is_logged_and_the_agent_keeps_serving() {
    captured_log();
    let flaky = FaultySigner::new(local(KeyType::P256));
    let agent = RunningAgent::start(
        Agent::builder()
            .key_with_comment(flaky.clone(), "flaky")
            .build()
            .unwrap(),
    );
    let blob = key_blob(&*flaky);
    let mut client = agent.connect();
    flaky.set(Mode::Down);
    let (login, _) = login_request(&blob, 0);
    assert_eq!(client.request(&login), FAILURE);
    let logged = captured_log();
    assert!(
        logged.iter().any(|l| l.contains(flaky.key_id().as_str())
            && l.contains("service unavailable: test outage (HTTP 503)")),
        "{logged:?}"
    );
    flaky.set(Mode::Working);
    assert_eq!(client.request(&login)[0], 14);
}

#[test]
fn keys_without_an_ssh_form_and_certificates_without_principals_are_refused() {
    let none: [&str; 0] = [];
    let err = Agent::builder()
        .certificate_authority(local(KeyType::Ed25519), CertificateOptions::new(none))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), remote_signer::ErrorKind::Config);
    assert_eq!(
        Agent::builder().build().unwrap_err().kind(),
        remote_signer::ErrorKind::Config
    );
}

/// The command-line agent: prints the socket line, serves, and cleans up on a signal.
fn run_cli_agent(args: &[&str], signal: &str) {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_remote-signer"))
        .arg("agent")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let socket = line
        .strip_prefix("SSH_AUTH_SOCK=")
        .and_then(|rest| rest.strip_suffix("; export SSH_AUTH_SOCK;\n"))
        .unwrap_or_else(|| {
            let _ = child.kill();
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            panic!("unexpected first line {line:?}; stderr: {stderr}")
        })
        .to_string();
    let socket = Path::new(&socket);
    let mode = std::fs::metadata(socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    if !args.contains(&"--socket") {
        assert_eq!(dir_mode & 0o777, 0o700);
    }
    let out = Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", socket)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    if args.contains(&"--certificate") {
        assert!(listed.starts_with("ssh-ed25519-cert-v01@openssh.com "));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "agent exit: {status}");
    assert!(!socket.exists(), "socket left behind");
}

#[test]
fn the_cli_agent_prints_the_socket_and_removes_it_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    LocalSigner::generate_to_file(KeyType::P256, &key).unwrap();
    let key = key.to_str().unwrap();
    run_cli_agent(&["--key", key], "-TERM");
    let socket = dir.path().join("agent.sock");
    run_cli_agent(
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--key",
            key,
            "--certificate",
            "--principal",
            "deploy",
            "--validity",
            "600",
        ],
        "-INT",
    );
}

/// Seeded xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn random_and_mutated_messages_get_failure_or_a_well_formed_answer() {
    let ed25519 = local(KeyType::Ed25519);
    let agent = Agent::builder()
        .key(Arc::clone(&ed25519))
        .certificate_authority(local(KeyType::P256), CertificateOptions::new(["fuzz"]))
        .build()
        .unwrap();
    let (valid, _) = login_request(&key_blob(&*ed25519), 0);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..5000 {
        let mut message = match round % 3 {
            0 => valid.clone(),
            1 => vec![rng.below(256) as u8; rng.below(64)],
            _ => {
                let mut m = vec![[11u8, 13, 17, 25, 27][rng.below(5)]];
                m.extend((0..rng.below(40)).map(|_| rng.next() as u8));
                m
            }
        };
        for _ in 0..rng.below(4) {
            match rng.below(3) {
                0 if !message.is_empty() => {
                    let i = rng.below(message.len());
                    message[i] ^= 1 << rng.below(8);
                }
                1 => message.truncate(rng.below(message.len() + 1)),
                _ => message.push(rng.next() as u8),
            }
        }
        let answer = agent.respond(&message).await;
        match answer[0] {
            5 => assert_eq!(answer.len(), 1),
            12 => assert_eq!(message, [11]),
            14 => {
                // Only a sign request that still names the key (the data may have changed).
                assert_eq!(message[0], 13);
                let signature = ssh_key::Signature::try_from(&answer[5..]).unwrap();
                assert_eq!(signature.algorithm(), ssh_key::Algorithm::Ed25519);
            }
            other => panic!("unexpected answer type {other}"),
        }
    }
}

#[test]
fn a_never_expiring_certificate_issued_elsewhere_for_a_managed_key_logs_in() {
    let key = local(KeyType::Ed25519);
    let agent = agent_for(&[(Arc::clone(&key), "managed")]);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&ca)
        .status()
        .unwrap();
    assert!(status.success());
    let public = dir.path().join("managed.pub");
    std::fs::write(&public, format!("{}\n", openssh(&*key))).unwrap();
    // `always:forever`: valid_before is u64::MAX, which ssh-key's parser cannot read.
    let out = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args([
            "-I",
            "issued elsewhere",
            "-n",
            &current_user(),
            "-V",
            "always:forever",
        ])
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certificate = dir.path().join("managed-cert.pub");
    // ssh also tries the file as a private key and refuses it while others can read it.
    std::fs::set_permissions(
        &certificate,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let ca_line = std::fs::read_to_string(dir.path().join("ca.pub")).unwrap();
    let sshd = Sshd::start(&[], &[ca_line.trim().to_string()]);
    // Only the certificate can log in: the server knows no plain key.
    sshd.assert_login(
        &agent.socket,
        &[&format!("CertificateFile={}", certificate.display())],
    );
    assert!(
        sshd.log()
            .contains("Accepted certificate ID \"issued elsewhere\"")
    );

    // The same on the raw socket: a sign request carrying the certificate blob.
    let line = std::fs::read_to_string(&certificate).unwrap();
    let blob = base64_decode(line.split_whitespace().nth(1).unwrap());
    let answer = agent.connect().request(&login_request(&blob, 0).0);
    assert_eq!(answer[0], 14);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn connections_from_other_users_are_closed_unanswered() {
    use std::os::unix::fs::PermissionsExt;
    // A socket anyone may reach, so only the agent's own check stands in the way.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = RunningAgent::start_in(
        Agent::builder()
            .key(local(KeyType::Ed25519))
            .build()
            .unwrap(),
        dir,
    );
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(agent.list().len(), 1);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "ssh-add",
            "-L",
        ])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    // ssh-add reports the closed connection, or dies of SIGPIPE if it was closed first.
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Whether the agent closed `stream` (a read sees end of file or a reset) within 10 s.
fn closed_by_agent(stream: &mut std::os::unix::net::UnixStream) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// One request over `stream`, in the agent's framing; the answer's body.
async fn request_on(stream: &mut tokio::net::UnixStream, body: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut message = (body.len() as u32).to_be_bytes().to_vec();
    message.extend_from_slice(body);
    stream.write_all(&message).await.unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).await.unwrap();
    answer
}

/// Whether the agent closed `stream` (a read sees end of file or a reset).
async fn closed_by_agent_async(stream: &mut tokio::net::UnixStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf).await {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

// Paused tokio time: the agent's message timeout runs on the virtual clock, which jumps ahead
// whenever every task waits, so nothing here waits in real time.
#[tokio::test(start_paused = true)]
async fn a_client_stalling_mid_message_is_disconnected_while_idle_and_other_clients_are_served() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{UnixListener, UnixStream};
    use tokio::time::Instant;
    let timeout = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = Agent::builder()
        .key(local(KeyType::Ed25519))
        .message_timeout(timeout)
        .build()
        .unwrap();
    let listener = UnixListener::bind(&socket).unwrap();
    let serving = agent.clone();
    let server = tokio::spawn(async move { serving.serve(listener).await });

    let begun = Instant::now();
    let mut idle = UnixStream::connect(&socket).await.unwrap();
    // Half a length prefix, then nothing.
    let mut stalled = UnixStream::connect(&socket).await.unwrap();
    stalled.write_all(&[0, 0]).await.unwrap();
    // A message that announces 100 bytes and sends 10.
    let mut short = UnixStream::connect(&socket).await.unwrap();
    short.write_all(&[0, 0, 0, 100, 11, 0, 0, 0]).await.unwrap();

    let mut other = UnixStream::connect(&socket).await.unwrap();
    assert_eq!(
        identity_count(&request_on(&mut other, &[11]).await),
        1,
        "others are served meanwhile"
    );
    assert!(
        begun.elapsed() < timeout,
        "served before the stalls time out"
    );
    assert!(
        closed_by_agent_async(&mut stalled).await,
        "a stalled prefix is cut off"
    );
    assert!(
        closed_by_agent_async(&mut short).await,
        "a stalled body is cut off"
    );
    assert!(
        begun.elapsed() >= timeout,
        "cut off only once the timeout has passed"
    );
    // A connection idle between messages (as ssh holds one for a session) stays open.
    tokio::time::sleep(2 * timeout).await;
    assert_eq!(
        request_on(&mut idle, &[11]).await[0],
        12,
        "the idle connection still answers"
    );
    server.abort();
}

#[test]
fn at_the_cap_the_longest_idle_connection_makes_room_for_a_new_one() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    captured_log();
    let agent = RunningAgent::start(
        Agent::builder()
            .key(local(KeyType::Ed25519))
            .max_connections(2)
            .build()
            .unwrap(),
    );
    let mut oldest = agent.connect();
    let mut recent = agent.connect();
    // Both answered, the oldest first: it is the one idle longest.
    assert_eq!(oldest.request(&[11])[0], 12);
    assert_eq!(recent.request(&[11])[0], 12);
    let mut third = UnixStream::connect(&agent.socket).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    third.write_all(&[0, 0, 0, 1, 11]).unwrap();
    let mut answer = [0u8; 5];
    third.read_exact(&mut answer).unwrap();
    assert_eq!(answer[4], 12, "the new connection is served");
    assert!(
        closed_by_agent(&mut oldest.0),
        "the longest-idle connection made room"
    );
    assert_eq!(recent.request(&[11])[0], 12, "the other one goes on");
    assert!(
        captured_log()
            .iter()
            .any(|l| l.contains("closed the one idle longest")),
        "{:?}",
        captured_log()
    );
}

#[test]
fn a_client_that_stops_reading_answers_is_disconnected() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    captured_log();
    let agent = RunningAgent::start(
        Agent::builder()
            .key(local(KeyType::Ed25519))
            .message_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let mut greedy = UnixStream::connect(&agent.socket).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Far more answers than the socket buffers hold, never read: the agent's write stalls.
    let requests: Vec<u8> = [0u8, 0, 0, 1, 11].repeat(100_000);
    let _ = greedy.write_all(&requests);
    let disconnected = wait_for(|| {
        captured_log()
            .iter()
            .any(|l| l.contains("stopped reading answers"))
            .then_some(())
    });
    assert!(disconnected.is_some(), "{:?}", captured_log());
    // What was buffered can still be read, then the connection ends.
    greedy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let end = greedy.read_to_end(&mut rest);
    assert!(
        end.is_ok() || end.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "the agent closed the connection"
    );
    assert_eq!(agent.list().len(), 1, "others are served");
}

/// Keys served by the Key Vault emulator over real TLS, through the official SDK.
#[cfg(feature = "azure")]
mod key_vault {
    use super::*;
    use keyvault::{Emulator, KeySpec};
    use remote_signer::backend::azure::KeyVaultSigner;

    /// The emulator and the runtime the signers' connections were opened on (kept alive for
    /// the whole test, as an application's runtime would be).
    struct Vault {
        emu: Emulator,
        runtime: tokio::runtime::Runtime,
    }

    impl Vault {
        fn start() -> Vault {
            Vault {
                emu: Emulator::start(),
                runtime: tokio::runtime::Runtime::new().unwrap(),
            }
        }

        fn key(&self, name: &str, spec: KeySpec) -> Arc<dyn RemoteSigner> {
            let version = self.emu.create_key(name, spec);
            let url = self.emu.key_url(name, Some(&version));
            let environment: Vec<_> = self
                .emu
                .env()
                .into_iter()
                .filter(|(k, _)| k != "SSL_CERT_FILE")
                .collect();
            let signer = self
                .runtime
                .block_on(
                    KeyVaultSigner::builder(&url)
                        .environment(environment)
                        .add_root_certificate_pem(self.emu.ca_pem())
                        .verify_challenge_resource(false)
                        .build(),
                )
                .expect("open the emulator's key");
            Arc::new(signer)
        }
    }

    #[test]
    fn key_vault_rsa_and_ec_keys_log_in_through_the_agent() {
        let vault = Vault::start();
        let keys = [
            (vault.key("ssh-rsa", KeySpec::Rsa(2048)), "key vault rsa"),
            (vault.key("ssh-ec", KeySpec::P256), "key vault ec"),
        ];
        let agent = agent_for(&keys);
        assert_eq!(agent.list().len(), 2);
        let authorized: Vec<String> = keys.iter().map(|(s, _)| openssh(&**s)).collect();
        let sshd = Sshd::start(&authorized, &[]);
        let before = vault.emu.count("sign");
        for algorithm in ["rsa-sha2-256", "rsa-sha2-512", "ecdsa-sha2-nistp256"] {
            sshd.assert_login(
                &agent.socket,
                &[&format!("PubkeyAcceptedAlgorithms={algorithm}")],
            );
        }
        // Every login is one signature by the vault.
        assert_eq!(vault.emu.count("sign"), before + 3);
    }

    #[test]
    fn a_key_vault_ca_certifies_the_surrogate_once_for_many_logins() {
        let vault = Vault::start();
        let ca = vault.key("ssh-ca", KeySpec::Rsa(2048));
        let agent = RunningAgent::start(
            Agent::builder()
                .certificate_authority(Arc::clone(&ca), CertificateOptions::new([current_user()]))
                .build()
                .unwrap(),
        );
        let sshd = Sshd::start(&[], &[openssh(&*ca)]);
        for _ in 0..3 {
            sshd.assert_login(&agent.socket, &[]);
        }
        assert_eq!(vault.emu.count("sign"), 1);
    }
}

/// The attacker of issue 14: a process that reaches the agent's socket, but no key file.
/// It is a [`RemoteSigner`] whose signatures come from the agent, so the crate's own APIs
/// build every credential that trusts the same key: the data they sign is the crate's real
/// signing inputs (JWS, surrogate certificates, Snowflake JWTs, OpenSSH certificate TBS bytes).
mod socket_oracle {
    use super::*;
    use remote_signer::{Algorithm, Error, ErrorKind, KeyId, PublicKey, Signature};

    #[derive(Debug)]
    pub struct SocketOracle {
        pub socket: std::path::PathBuf,
        pub victim: Arc<dyn RemoteSigner>,
    }

    #[async_trait::async_trait]
    impl RemoteSigner for SocketOracle {
        fn key_id(&self) -> &KeyId {
            self.victim.key_id()
        }
        fn public_key(&self) -> &PublicKey {
            self.victim.public_key()
        }
        async fn sign(
            &self,
            algorithm: Algorithm,
            message: &[u8],
        ) -> remote_signer::Result<Signature> {
            let flags = match algorithm {
                Algorithm::RS256 => 2,
                Algorithm::RS512 => 4,
                _ => 0,
            };
            let request = sign_request(&key_blob(&*self.victim), message, flags);
            let socket = self.socket.clone();
            let answer = tokio::task::spawn_blocking(move || {
                ssh_support::RawClient(std::os::unix::net::UnixStream::connect(socket).unwrap())
                    .request(&request)
            })
            .await
            .unwrap();
            if answer == FAILURE {
                return Err(Error::with_context(
                    ErrorKind::Unavailable,
                    "the agent refused to sign",
                ));
            }
            let signature = ssh_key::Signature::try_from(&answer[5..]).unwrap();
            Ok(Signature::new(algorithm, signature.as_bytes().to_vec()))
        }
    }

    /// An agent offering `victim`, optionally with the opt-out, and an oracle on its socket.
    pub fn agent_oracle(
        victim: &Arc<dyn RemoteSigner>,
        dangerous: bool,
    ) -> (RunningAgent, Arc<SocketOracle>) {
        let mut builder = Agent::builder().key(Arc::clone(victim));
        if dangerous {
            builder = builder.dangerous_sign_any_data();
        }
        let agent = RunningAgent::start(builder.build().unwrap());
        let oracle = Arc::new(SocketOracle {
            socket: agent.socket.clone(),
            victim: Arc::clone(victim),
        });
        (agent, oracle)
    }

    /// Forges a session token for purpose `admin` signed directly by the managed key.
    pub async fn direct_session_token(oracle: Arc<SocketOracle>) -> remote_signer::Result<String> {
        let signer = remote_signer::cookie::SessionSigner::builder(oracle, "admin")
            .mode(remote_signer::cookie::SigningMode::Direct)
            .build()
            .unwrap();
        signer.sign(&serde_json::json!({"user": "mallory"})).await
    }

    /// Forges a surrogate certificate (and a session token its surrogate signs).
    pub async fn surrogate_session_token(
        oracle: Arc<SocketOracle>,
    ) -> remote_signer::Result<String> {
        let signer = remote_signer::cookie::SessionSigner::new(oracle, "admin")?;
        signer.sign(&serde_json::json!({"user": "mallory"})).await
    }

    pub fn session_verifier(
        victim: &Arc<dyn RemoteSigner>,
    ) -> remote_signer::cookie::SessionVerifier {
        remote_signer::cookie::SessionVerifier::new(
            [remote_signer::surrogate::TrustedKey::from_signer(&**victim)],
            "admin",
        )
    }

    /// Mints an OpenSSH user certificate for `root` through the socket.
    pub async fn openssh_certificate(
        oracle: Arc<SocketOracle>,
    ) -> remote_signer::Result<ssh_key::Certificate> {
        let minting = Agent::builder()
            .certificate_authority(oracle, CertificateOptions::new(["root"]))
            .build()?;
        minting.renew_certificates().await?;
        let answer = minting.respond(&[11]).await;
        let blob_len = u32::from_be_bytes(answer[5..9].try_into().unwrap()) as usize;
        Ok(ssh_key::Certificate::from_bytes(&answer[9..9 + blob_len]).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_no_oracle_for_session_tokens_or_surrogate_certificates() {
    use socket_oracle::*;
    captured_log();
    let victim = local(KeyType::Ed25519);
    let verifier = session_verifier(&victim);

    // With the opt-out, the forgeries work: the attack is real.
    let (_open, oracle) = agent_oracle(&victim, true);
    let forged = direct_session_token(Arc::clone(&oracle)).await.unwrap();
    assert!(verifier.verify(&forged).is_ok(), "a forged direct token");
    let forged = surrogate_session_token(oracle).await.unwrap();
    assert!(
        verifier.verify(&forged).is_ok(),
        "a forged surrogate certificate"
    );

    // By default the agent refuses the crate's own signing inputs, and says why.
    let (_agent, oracle) = agent_oracle(&victim, false);
    assert!(direct_session_token(Arc::clone(&oracle)).await.is_err());
    assert!(surrogate_session_token(oracle).await.is_err());
    let logged = captured_log();
    assert!(
        logged.iter().any(|l| l.contains("refused to sign")
            && l.contains("neither an SSH user-authentication request nor an SSHSIG blob")),
        "{logged:?}"
    );
    assert!(
        !logged.iter().any(|l| l.contains("eyJ")),
        "the data is never logged: {logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_no_oracle_for_snowflake_jwts() {
    use socket_oracle::*;
    let victim = local(KeyType::Rsa);
    let issued_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let lifetime = Duration::from_secs(3600);
    let genuine =
        remote_signer::snowflake::KeyPairAuth::new(Arc::clone(&victim), "acme-prod", "etl")
            .unwrap()
            .token_at(issued_at, lifetime)
            .await
            .unwrap();
    let forge = |oracle: Arc<SocketOracle>| async move {
        remote_signer::snowflake::KeyPairAuth::new(oracle, "acme-prod", "etl")?
            .token_at(issued_at, lifetime)
            .await
    };
    let (_open, oracle) = agent_oracle(&victim, true);
    let forged = forge(oracle).await.unwrap();
    assert_eq!(
        forged.as_str(),
        genuine.as_str(),
        "the forgery is the real token"
    );
    let (_agent, oracle) = agent_oracle(&victim, false);
    assert!(forge(oracle).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_no_oracle_for_openssh_certificates() {
    use socket_oracle::*;
    let victim = local(KeyType::Ed25519);
    let fingerprint = ssh_key::PublicKey::from_openssh(&openssh(&*victim))
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256);
    let (_open, oracle) = agent_oracle(&victim, true);
    let forged = openssh_certificate(oracle).await.unwrap();
    assert_eq!(forged.valid_principals(), ["root"]);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    forged
        .validate_at(now, [&fingerprint])
        .expect("a certificate the victim key signed");

    let (_agent, oracle) = agent_oracle(&victim, false);
    assert!(openssh_certificate(oracle).await.is_err());
}

#[test]
fn only_user_authentication_requests_and_sshsig_blobs_are_signed() {
    use ssh_encoding::Encode;
    captured_log();
    let key = local(KeyType::Ed25519);
    let other = local(KeyType::Ed25519);
    let agent = agent_for(&[(Arc::clone(&key), "key")]);
    let blob = key_blob(&*key);
    let mut client = agent.connect();
    let host_key = key_blob(&*other);

    let mut sshsig = b"SSHSIG".to_vec();
    "file".encode(&mut sshsig).unwrap();
    "".encode(&mut sshsig).unwrap();
    "sha512".encode(&mut sshsig).unwrap();
    [7u8; 64].as_slice().encode(&mut sshsig).unwrap();
    let signed: [(&str, Vec<u8>); 3] = [
        ("publickey", userauth_data(&blob, "ssh-ed25519", None)),
        (
            "hostbound",
            userauth_data(&blob, "ssh-ed25519", Some(&host_key)),
        ),
        ("sshsig", sshsig.clone()),
    ];
    for (what, data) in &signed {
        let answer = client.request(&sign_request(&blob, data, 0));
        assert_eq!(answer[0], 14, "{what}");
        let signature = ssh_key::Signature::try_from(&answer[5..]).unwrap();
        key.public_key()
            .verify(remote_signer::Algorithm::EdDSA, data, signature.as_bytes())
            .unwrap();
    }

    let mut trailing = userauth_data(&blob, "ssh-ed25519", None);
    trailing.push(0);
    let mut sshsig_trailing = sshsig;
    sshsig_trailing.push(0);
    let refused: [(&str, Vec<u8>, &str); 6] = [
        (
            "arbitrary bytes",
            b"release v1.0".to_vec(),
            "neither an SSH",
        ),
        (
            "a login for another key",
            userauth_data(&key_blob(&*other), "ssh-ed25519", None),
            "for another key",
        ),
        (
            "a login naming another key type",
            userauth_data(&blob, "ecdsa-sha2-nistp256", None),
            "algorithm of another key type",
        ),
        ("a login with trailing bytes", trailing, "trailing bytes"),
        (
            "an SSHSIG blob with trailing bytes",
            sshsig_trailing,
            "trailing bytes",
        ),
        (
            "a JWS signing input",
            b"eyJhbGciOiJFZERTQSJ9.e30".to_vec(),
            "neither an SSH",
        ),
    ];
    for (what, data, reason) in &refused {
        assert_eq!(
            client.request(&sign_request(&blob, data, 0)),
            FAILURE,
            "{what}"
        );
        assert!(
            captured_log().iter().any(|l| l.contains(reason)),
            "{what}: {:?}",
            captured_log()
        );
    }
}

#[test]
fn an_agent_refuses_one_key_as_both_ca_and_identity() {
    let key = local(KeyType::Ed25519);
    let err = Agent::builder()
        .key(Arc::clone(&key))
        .certificate_authority(Arc::clone(&key), CertificateOptions::new(["deploy"]))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), remote_signer::ErrorKind::Config);
    assert!(
        err.to_string()
            .contains("is both a certificate authority and an offered identity"),
        "{err}"
    );
}

/// Runs the CLI agent with `args` until it exits, and returns its stderr.
fn cli_agent_error(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_remote-signer"))
        .arg("agent")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the agent should have refused {args:?}"
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn the_cli_agent_says_what_is_wrong_with_its_socket_and_principals() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    LocalSigner::generate_to_file(KeyType::Ed25519, &key).unwrap();
    let key = key.to_str().unwrap();

    let missing = dir.path().join("missing").join("agent.sock");
    let stderr = cli_agent_error(&["--socket", missing.to_str().unwrap(), "--key", key]);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        !stderr.contains(".remote-signer-agent."),
        "no staging path: {stderr}"
    );

    let stderr = cli_agent_error(&["--key", key, "--certificate"]);
    assert!(stderr.contains("--principal"), "{stderr}");

    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let stderr = cli_agent_error(&["--socket", file.to_str().unwrap(), "--key", key]);
    assert!(stderr.contains("is not a socket"), "{stderr}");

    // A socket another agent listens on is left alone.
    let busy = dir.path().join("busy.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    let stderr = cli_agent_error(&["--socket", busy.to_str().unwrap(), "--key", key]);
    assert!(stderr.contains("another agent is listening"), "{stderr}");
}

#[test]
fn the_cli_agent_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    LocalSigner::generate_to_file(KeyType::Ed25519, &key).unwrap();
    let stale = dir.path().join("agent.sock");
    // Bound, then the listener is gone: nothing listens on the path any more.
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    run_cli_agent(
        &[
            "--socket",
            stale.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        "-TERM",
    );
}

/// `future`'s output if it is ready at the first poll; panics if it would wait.
async fn at_once<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::select! {
        biased;
        out = future => out,
        () = std::future::ready(()) => panic!("the agent made the client wait"),
    }
}

/// The identities an `IDENTITIES_ANSWER` lists.
fn identity_count(answer: &[u8]) -> u32 {
    assert_eq!(answer[0], 12, "{answer:?}");
    u32::from_be_bytes(answer[1..5].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_ca_never_delays_answers_and_is_called_once_per_backoff_step() {
    let start = 1_900_000_000u64;
    let clock = Arc::new(ManualClock::at_unix(start));
    let ca = FaultySigner::new(local(KeyType::Ed25519));
    let agent = Agent::builder()
        .certificate_authority(
            ca.clone(),
            CertificateOptions::new(["deploy"]).validity(Duration::from_secs(400)),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    agent.renew_certificates().await.unwrap();
    assert_eq!(identity_count(&at_once(agent.respond(&[11])).await), 1);
    let listed = agent.respond(&[11]).await;
    let blob_len = u32::from_be_bytes(listed[5..9].try_into().unwrap()) as usize;
    let certificate = listed[9..9 + blob_len].to_vec();
    assert_eq!(ca.calls(), 1);

    // The vault stops answering and the certificate expires: six clients at once are all
    // answered at the first poll, without the certificate, and one renewal is under way.
    ca.set(Mode::Hang);
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(start + 750));
    let answers = futures_join(&agent, 6).await;
    assert!(
        answers.iter().all(|a| identity_count(a) == 0),
        "{answers:?}"
    );
    assert_eq!(
        at_once(agent.respond(&login_request(&certificate, 0).0)).await,
        FAILURE,
        "the expired certificate signs nothing"
    );
    ca.entered().await;
    // However long the attempt hangs and however many clients ask: still that one call.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(120));
        assert_eq!(identity_count(&at_once(agent.respond(&[11])).await), 0);
    }
    assert_eq!(ca.calls(), 2);

    // The attempt fails; the vault comes back; the next client after the backoff starts one
    // renewal, and the certificate is listed again.
    ca.set(Mode::Working);
    ca.release();
    for _ in 0..1000 {
        if agent.certificate_status()[0].consecutive_failures > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = &agent.certificate_status()[0];
    assert_eq!(status.attempts, 2, "{status:?}");
    clock.advance(Duration::from_secs(61));
    let mut renewed = false;
    // Polled until the background renewal lands (minting takes real time, not clock time).
    for _ in 0..1000 {
        if identity_count(&at_once(agent.respond(&[11])).await) == 1 {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(renewed, "renewed once the vault answered");
    assert_eq!(ca.calls(), 3);
}

/// `n` identity requests at once, each required to be answered at its first poll.
async fn futures_join(agent: &Agent, n: usize) -> Vec<Vec<u8>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let agent = agent.clone();
        tasks.spawn(async move { at_once(agent.respond(&[11])).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    answers
}
