//! What a user types and reads: every file input of the CLI (`--key`, `--passphrase-file`,
//! `--trust`, `--public-key`, `--in`) is bounded and never blocks, refusals give the real
//! reason in one line, nothing secret or unprintable is echoed, and `-v`/`RUST_LOG` work for
//! every command.
//!
//! Each CLI run has a time limit: a run that outlives it is killed and fails the test, so a
//! hang shows as a failure rather than a stuck suite.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use remote_signer::backend::local::{LocalKeyOptions, LocalSigner, PASSPHRASE_ENV};
use remote_signer::{ErrorKind, KeyType, RemoteSigner as _};

const BIN: &str = env!("CARGO_BIN_EXE_remote-signer");
/// Far above what any of these runs needs (the slowest waits 10 s for a FIFO's writer), far
/// below a hang.
const TIME_LIMIT: Duration = Duration::from_secs(60);
const PASSPHRASE: &str = "correct horse battery staple";

/// Runs `command` to completion within [`TIME_LIMIT`], or kills it and panics.
fn run_limited(mut command: Command) -> Output {
    let mut child = command
        .env_remove(PASSPHRASE_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{command:?} hung; it was killed: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(101), "the CLI panicked: {out:?}");
    out
}

fn cli(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("RUST_LOG");
    run_limited(command)
}

/// The CLI through bash, for process substitution (`<(...)`) as users write it.
fn bash(script: &str) -> Output {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .env("CLI", BIN)
        .env_remove("RUST_LOG");
    run_limited(command)
}

/// One line on stderr, exit 2 (or 1 for the verifying commands), containing `needle`.
fn one_line_failure(out: &Output, needle: &str) -> String {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "expected a failure: {out:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    err
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    key: PathBuf,
    encrypted: PathBuf,
    public: PathBuf,
    message: PathBuf,
    token: PathBuf,
    fifo: PathBuf,
}

fn private(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        LocalSigner::generate_to_file(KeyType::P256, &key).unwrap();
        let encrypted = dir.path().join("enc.p8");
        let out = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout"])
            .arg(format!("pass:{PASSPHRASE}"))
            .arg("-in")
            .arg(&key)
            .arg("-out")
            .arg(&encrypted)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        private(&encrypted);
        let public = dir.path().join("k.pub.pem");
        fs::write(
            &public,
            LocalSigner::open(&key).unwrap().public_key().to_pem(),
        )
        .unwrap();
        let message = dir.path().join("message");
        fs::write(&message, b"hello\n").unwrap();
        let token = dir.path().join("token");
        fs::write(&token, b"not.a.token\n").unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        Setup {
            dir,
            key,
            encrypted,
            public,
            message,
            token,
            fifo,
        }
    }

    fn s(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    /// The command line that reads `input` through `flag`; everything else is valid.
    fn args<'a>(&'a self, flag: &str, input: &'a str) -> Vec<&'a str> {
        let key = Self::s(&self.key);
        let message = Self::s(&self.message);
        match flag {
            "--key" => vec!["fingerprint", "--key", input],
            "--passphrase-file" => vec![
                "fingerprint",
                "--key",
                Self::s(&self.encrypted),
                "--passphrase-file",
                input,
            ],
            "--trust" => vec![
                "cookie",
                "verify",
                "--trust",
                input,
                "--purpose",
                "session",
                "--in",
                Self::s(&self.token),
            ],
            "--public-key" => vec![
                "verify",
                "--public-key",
                input,
                "--alg",
                "ES256",
                "--signature",
                "AAAA",
                "--in",
                message,
            ],
            "--in" => vec!["sign", "--key", key, "--in", input],
            _ => unreachable!(),
        }
    }
}

const FLAGS: [&str; 5] = [
    "--key",
    "--passphrase-file",
    "--trust",
    "--public-key",
    "--in",
];

/// A FIFO that nobody writes to (waited for `--pipe-wait`, then refused), `/dev/zero`, a
/// directory and a missing file: each refused with the reason, for every file input. The
/// inputs run in parallel, so the FIFO waits overlap.
#[test]
fn every_file_input_refuses_fifos_without_writers_devices_and_directories() {
    let setup = Setup::new();
    let dir = Setup::s(setup.dir.path());
    let fifo = Setup::s(&setup.fifo);
    let missing = setup.dir.path().join("missing");
    let missing = Setup::s(&missing);
    std::thread::scope(|scope| {
        for flag in FLAGS {
            for (input, needle) in [
                (fifo, "nothing arrived within 2 s"),
                ("/dev/zero", "it is a device"),
                (dir, "it is a directory"),
                (missing, "no such file"),
            ] {
                let mut args = setup.args(flag, input);
                // The wait, not its length, is what is checked; the 10 s default is below.
                args.extend(["--pipe-wait", "2"]);
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let out = cli(&args);
                    if input == fifo {
                        assert!(
                            started.elapsed() >= std::time::Duration::from_secs(2),
                            "{flag}: waited for the writer"
                        );
                    }
                    let err = one_line_failure(&out, needle);
                    assert_eq!(
                        err.matches(input).count(),
                        1,
                        "{flag}: the file once: {err}"
                    );
                });
            }
        }
    });
}

/// The pipe wait is 10 s unless `--pipe-wait` says otherwise, in the library and the CLI.
#[test]
fn a_pipe_is_waited_for_ten_seconds_by_default() {
    assert_eq!(
        remote_signer::file::DEFAULT_WAIT,
        std::time::Duration::from_secs(10)
    );
    let help = String::from_utf8(cli(&["--help"]).stdout).unwrap();
    let line = help
        .lines()
        .find(|l| l.contains("--pipe-wait <SECONDS>"))
        .unwrap_or_else(|| panic!("no --pipe-wait in {help}"));
    assert!(line.ends_with("[default: 10]"), "{line}");
    for bad in ["0", "3601", "x"] {
        let out = cli(&["fingerprint", "--key", "k.pem", "--pipe-wait", bad]);
        assert_eq!(out.status.code(), Some(2), "--pipe-wait {bad}");
    }
}

/// A pipe with a writer works for every file input, as `<(pass show key)` does; a private key
/// given to `--trust` through a pipe works too, which it can only if it is read exactly once.
#[test]
fn every_file_input_reads_a_pipe_with_a_writer() {
    let setup = Setup::new();
    let key = Setup::s(&setup.key);
    let public = Setup::s(&setup.public);
    let encrypted = Setup::s(&setup.encrypted);
    let message = Setup::s(&setup.message);
    let expected = ok(&cli(&["fingerprint", "--key", key]));
    // --key and --passphrase-file (the writer takes its time, as a password manager may).
    assert_eq!(
        ok(&bash(&format!(r#""$CLI" fingerprint --key <(cat {key})"#))),
        expected
    );
    assert_eq!(
        ok(&bash(&format!(
            r#""$CLI" fingerprint --key {encrypted} --passphrase-file <(sleep 1; echo '{PASSPHRASE}')"#
        ))),
        expected
    );
    // --in, then --public-key with a public key and with the private key.
    let signature = ok(&bash(&format!(
        r#""$CLI" sign --key {key} --in <(cat {message})"#
    )));
    let signature = signature.trim();
    for source in [public, key] {
        let out = bash(&format!(
            r#""$CLI" verify --public-key <(cat {source}) --alg ES256 --signature {signature} --in {message}"#
        ));
        ok(&out);
    }
    // --trust with the private key through a pipe.
    let token = {
        let mut command = Command::new(BIN);
        command.args(["cookie", "sign", "--key", key, "--purpose", "session"]);
        command
            .args(["--direct", "--in"])
            .arg(setup.dir.path().join("claims"));
        fs::write(setup.dir.path().join("claims"), b"{\"user\":\"alice\"}").unwrap();
        ok(&run_limited(command))
    };
    let token_file = setup.dir.path().join("good-token");
    fs::write(&token_file, token).unwrap();
    let claims = ok(&bash(&format!(
        r#""$CLI" cookie verify --trust <(cat {key}) --purpose session --in {}"#,
        token_file.display()
    )));
    assert!(claims.contains("alice"), "{claims}");
}

/// More than an input's bound is refused without reading it all.
#[test]
fn oversized_inputs_are_refused() {
    let setup = Setup::new();
    let big = setup.dir.path().join("big.pem");
    fs::write(&big, vec![b'A'; 64 * 1024 + 1]).unwrap();
    private(&big);
    let big = Setup::s(&big);
    for flag in ["--key", "--passphrase-file", "--trust", "--public-key"] {
        one_line_failure(&cli(&setup.args(flag, big)), "larger than 65536 bytes");
    }
    // An endless pipe stops at the bound too.
    let out = bash(&format!(
        r#""$CLI" fingerprint --key {} --passphrase-file <(yes)"#,
        setup.encrypted.display()
    ));
    one_line_failure(&out, "larger than 65536 bytes");
}

/// A public key the crate does not support says so, whatever the file's mode (it was once
/// reported as "permissions too open"); a private key given as a public one follows the
/// private-key rules.
#[test]
fn public_key_files_report_the_real_reason() {
    let setup = Setup::new();
    // A 16384-bit RSA public key (any odd modulus of that size encodes one).
    let mut modulus = vec![0xffu8; 2048];
    modulus[0] = 0xc5;
    let big = rsa::RsaPublicKey::new_with_max_size(
        rsa::BigUint::from_bytes_be(&modulus),
        rsa::BigUint::from(65537u32),
        16384,
    )
    .unwrap();
    let der = rsa::pkcs8::EncodePublicKey::to_public_key_der(&big).unwrap();
    let path = setup.dir.path().join("rsa16384.der");
    fs::write(&path, der.as_bytes()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let p = Setup::s(&path);
    for flag in ["--public-key", "--trust"] {
        let err = one_line_failure(&cli(&setup.args(flag, p)), "16384 bits");
        assert!(!err.contains("permission"), "{err}");
    }
    let err = LocalKeyOptions::new().public_key(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedKey, "{err}");

    // The private key, readable by others: refused as a key file is, with the remedy.
    fs::set_permissions(&setup.key, fs::Permissions::from_mode(0o644)).unwrap();
    let key = Setup::s(&setup.key);
    let err = one_line_failure(&cli(&setup.args("--public-key", key)), "chmod 600");
    assert!(err.contains("--allow-readable-key-file"), "{err}");
    let err = LocalKeyOptions::new().public_key(&setup.key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecureKeyFile, "{err}");
}

/// A key URL's user information never reaches a message; control characters in a path are
/// escaped, so a message stays one line and cannot drive the terminal.
#[test]
fn nothing_secret_or_unprintable_is_echoed() {
    let setup = Setup::new();
    let secret = "pa55-w0rd-sentinel";
    let url = format!("https://user:{secret}@v.vault.azure.net/keys/k");
    let claims = setup.dir.path().join("claims");
    fs::write(&claims, b"{}").unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["public-key", "--key", &url],
        vec!["sign", "--key", &url, "--in", Setup::s(&setup.message)],
        vec![
            "snowflake",
            "jwt",
            "--key",
            &url,
            "--account",
            "a",
            "--user",
            "u",
        ],
        vec![
            "cookie",
            "sign",
            "--key",
            &url,
            "--purpose",
            "s",
            "--in",
            Setup::s(&claims),
        ],
        setup.args("--trust", &url),
        setup.args("--public-key", &url),
    ];
    for args in runs {
        let err = one_line_failure(&cli(&args), "user name or password");
        assert!(!err.contains(secret), "{args:?}: {err}");
    }

    let odd = setup.dir.path().join("a\nb\u{1b}[2J.pem");
    let out = cli(&["fingerprint", "--key", Setup::s(&odd)]);
    let err = one_line_failure(&out, "a\\nb\\u{1b}[2J.pem: no such file");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// `-v` is one global switch, accepted before or after any command, and `RUST_LOG` is
/// honoured; neither changes what a command prints on stdout.
#[test]
fn every_command_takes_the_verbose_switch_and_rust_log() {
    let setup = Setup::new();
    let key = Setup::s(&setup.key);
    let expected = ok(&cli(&["fingerprint", "--key", key]));
    for args in [
        vec!["-v", "fingerprint", "--key", key],
        vec!["fingerprint", "-vv", "--key", key],
        vec!["--verbose", "fingerprint", "--key", key, "-vvv"],
    ] {
        assert_eq!(ok(&cli(&args)), expected, "{args:?}");
    }
    for command in [
        vec!["public-key"],
        vec!["sign", "--in", Setup::s(&setup.message)],
        vec!["snowflake", "alter-user", "--user", "u"],
    ] {
        let mut args = command.clone();
        args.extend(["--key", key, "-v"]);
        // Snowflake wants RSA; a refusal is fine here, an unknown `-v` is not.
        let out = cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
    let mut command = Command::new(BIN);
    command
        .args(["fingerprint", "--key", key])
        .env("RUST_LOG", "remote_signer=trace");
    let out = run_limited(command);
    assert_eq!(ok(&out), expected);
    let mut command = Command::new(BIN);
    command
        .args(["fingerprint", "--key", key])
        .env("RUST_LOG", "=no such filter=");
    let out = run_limited(command);
    assert_eq!(ok(&out), expected);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RUST_LOG"),
        "a bad RUST_LOG is named: {out:?}"
    );
}
