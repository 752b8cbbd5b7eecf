//! Real OpenSSH around the agent: a throwaway sshd on 127.0.0.1, the client tools, an
//! in-process agent on its own runtime, and a capture of the log. Signers that count or fail
//! on demand are [`FaultySigner`](super::faulty::FaultySigner).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use remote_signer::RemoteSigner;
use remote_signer::ssh::Agent;
use tempfile::TempDir;

pub const SSHD: &str = "/usr/sbin/sshd";

/// The user the tests log in as: the one running them.
pub fn current_user() -> String {
    id("-un")
}

fn current_uid() -> u32 {
    id("-u").parse().expect("a numeric user id")
}

fn id(option: &str) -> String {
    let out = Command::new("id").arg(option).output().expect("run id");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A throwaway sshd on 127.0.0.1 with its own host key, `authorized_keys` and
/// `TrustedUserCAKeys`. Stopped on drop.
///
/// The test holds the listening socket itself and runs one `sshd -i` (inetd mode) per
/// accepted connection. sshd cannot report an ephemeral port, and a port found free, released
/// and handed to a daemon can be taken by anything else in between (or a readiness probe can
/// connect to itself, a TCP self-connect): then `ssh` meets a refused or foreign port. A socket
/// bound here and kept open for the life of the `Sshd` leaves no such window, and needs no
/// readiness probe: the port accepts connections before `start` returns.
pub struct Sshd {
    pub port: u16,
    dir: TempDir,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
    sessions: Arc<Mutex<Vec<Child>>>,
}

impl Sshd {
    /// Starts sshd trusting `authorized_keys` (OpenSSH lines) and `trusted_ca_keys`.
    pub fn start(authorized_keys: &[String], trusted_ca_keys: &[String]) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/test does)"
        );
        // Run as root, sshd needs its privilege separation directory; unprivileged, it uses
        // none (and authenticates only the user it runs as, which is the one the tests use).
        if current_uid() == 0 {
            std::fs::create_dir_all("/run/sshd")
                .expect("create sshd's privilege separation directory /run/sshd");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path("host_ed25519"))
            .status()
            .expect("run ssh-keygen: install openssh-client (scripts/test does)");
        assert!(status.success());
        std::fs::write(path("authorized_keys"), lines(authorized_keys)).unwrap();
        std::fs::write(path("trusted_ca_keys"), lines(trusted_ca_keys)).unwrap();
        // The sessions' HOME is this directory, so the login shell reads no rc files of the
        // user running the tests (one that prints would change the output; one that runs
        // `pyenv init` costs half a second a login). Only user authentication is under test,
        // so the key exchange is the cheapest one.
        let config = format!(
            "HostKey {host}\nPidFile none\nUsePAM no\n\
             StrictModes no\nAuthorizedKeysFile {keys}\nTrustedUserCAKeys {cas}\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\nSetEnv HOME={home}\n\
             KexAlgorithms curve25519-sha256\n",
            host = path("host_ed25519").display(),
            keys = path("authorized_keys").display(),
            cas = path("trusted_ca_keys").display(),
            home = dir.path().display(),
        );
        std::fs::write(path("sshd_config"), config).unwrap();
        std::fs::File::create(path("sshd.log")).unwrap();
        // A configuration sshd refuses fails here, with sshd's words, not at the first login.
        let test = Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(path("sshd_config"))
            .stdin(Stdio::null())
            .output()
            .expect("run sshd -t");
        assert!(
            test.status.success(),
            "sshd refuses its configuration: {}",
            String::from_utf8_lossy(&test.stderr)
        );

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, sessions) = (Arc::clone(&stop), Arc::clone(&sessions));
            let (config, log) = (path("sshd_config"), path("sshd.log"));
            std::thread::spawn(move || accept(&listener, &config, &log, &stop, &sessions))
        };
        Sshd {
            port,
            dir,
            stop,
            acceptor: Some(acceptor),
            sessions,
        }
    }

    /// What sshd logged so far (every connection's sshd appends to one log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Runs `echo logged-in` on the server through the agent at `socket`.
    pub fn login(&self, socket: &Path, user: &str, options: &[&str]) -> Output {
        let mut command = Command::new("ssh");
        command
            .env("SSH_AUTH_SOCK", socket)
            .args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=20",
            ]);
        for option in options {
            command.args(["-o", option]);
        }
        command
            .arg(format!("{user}@127.0.0.1"))
            .arg("echo logged-in")
            .stdin(Stdio::null())
            .output()
            .expect("run ssh: install openssh-client (scripts/test does)")
    }

    /// Asserts that logging in through `socket` works.
    pub fn assert_login(&self, socket: &Path, options: &[&str]) {
        let out = self.login(socket, &current_user(), options);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "logged-in",
            "login with {options:?} failed: {}\nsshd: {}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees `stop`.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for child in sessions.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Serves each connection to `listener` with its own `sshd -i` until `stop` is set.
fn accept(
    listener: &TcpListener,
    config: &Path,
    log: &Path,
    stop: &AtomicBool,
    sessions: &Mutex<Vec<Child>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue; // the client gave up before it was accepted
        };
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .expect("open the sshd log");
        let input = stream.try_clone().expect("clone the connection");
        let session = Command::new(SSHD)
            .arg("-i")
            .arg("-e")
            .arg("-f")
            .arg(config)
            .stdin(std::os::fd::OwnedFd::from(input))
            .stdout(std::os::fd::OwnedFd::from(stream))
            .stderr(log)
            .spawn()
            .expect("start sshd -i");
        let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
        sessions.push(session);
    }
}

fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// An agent served in-process on its own runtime, on a socket in a private directory.
/// Stopped on drop.
pub struct RunningAgent {
    pub socket: PathBuf,
    pub agent: Agent,
    _dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningAgent {
    /// Serves `agent`, minting its certificates first.
    pub fn start(agent: Agent) -> RunningAgent {
        Self::start_in(agent, tempfile::tempdir().unwrap())
    }

    /// Serves `agent` on `agent.sock` in `dir`.
    pub fn start_in(agent: Agent, dir: TempDir) -> RunningAgent {
        let socket = dir.path().join("agent.sock");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = agent.clone();
        let path = socket.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let ready = serving.renew_certificates().await;
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                ready_tx.send(ready).unwrap();
                serving
                    .serve_until(listener, async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ready_rx
            .recv()
            .unwrap()
            .expect("the first certificates are minted");
        RunningAgent {
            socket,
            agent,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `ssh-add -L`: the listed identities, one OpenSSH line each (empty when none).
    pub fn list(&self) -> Vec<String> {
        let out = Command::new("ssh-add")
            .arg("-L")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("run ssh-add: install openssh-client (scripts/test does)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            assert!(
                text.contains("no identities"),
                "ssh-add -L failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return Vec::new();
        }
        text.lines().map(str::to_string).collect()
    }

    /// A raw connection to the agent socket.
    pub fn connect(&self) -> RawClient {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        RawClient(stream)
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Speaks the agent protocol byte by byte, for messages no real client sends.
pub struct RawClient(pub UnixStream);

impl RawClient {
    /// Sends raw bytes (framing included) and reads one framed answer body.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.0.write_all(bytes).unwrap();
        self.read_answer()
    }

    /// Sends one message body with its length prefix and reads the answer body.
    pub fn request(&mut self, body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.send_raw(&frame)
    }

    pub fn read_answer(&mut self) -> Vec<u8> {
        let mut prefix = [0u8; 4];
        self.0.read_exact(&mut prefix).expect("an answer");
        let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
        self.0.read_exact(&mut body).expect("the answer body");
        body
    }
}

/// The body of a `SIGN_REQUEST`.
pub fn sign_request(key_blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
    let mut body = vec![13u8];
    for field in [key_blob, data] {
        body.extend_from_slice(&(field.len() as u32).to_be_bytes());
        body.extend_from_slice(field);
    }
    body.extend_from_slice(&flags.to_be_bytes());
    body
}

/// The SSH public key blob of a signer.
pub fn key_blob(signer: &dyn RemoteSigner) -> Vec<u8> {
    let line = signer.public_key().to_openssh("").unwrap();
    ssh_key::PublicKey::from_openssh(&line)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Collects this test binary's log lines, so tests can check what the agent logged.
pub struct CapturedLog(Mutex<Vec<String>>);

static LOG: CapturedLog = CapturedLog(Mutex::new(Vec::new()));

impl log::Log for CapturedLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{}: {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

/// Starts capturing (idempotent) and returns everything logged so far.
pub fn captured_log() -> Vec<String> {
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    LOG.0.lock().unwrap().clone()
}
