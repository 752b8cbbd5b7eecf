//! Sign requests per second over the agent socket, several clients at once: this crate's
//! agent (certificate mode, and a managed Ed25519 key) against OpenSSH's own `ssh-agent`
//! holding an Ed25519 key, side by side in the same run. Prints the ratios at the end
//! (target: at least 1.0 in certificate mode).
//!
//! Needs `ssh-agent`, `ssh-add` and `ssh-keygen` (Debian's openssh-client).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use remote_signer::KeyType;
use remote_signer::backend::local::LocalSigner;
use remote_signer::ssh::{Agent, CertificateOptions};

/// Concurrent clients, and sign requests each sends per batch.
const CLIENTS: usize = 4;
const REQUESTS_PER_CLIENT: usize = 50;

/// Requests and time spent, summed over everything criterion ran for one target.
#[derive(Default)]
struct Tally {
    requests: u64,
    elapsed: Duration,
}

impl Tally {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// One framed request body, answered with one framed body.
fn roundtrip(stream: &mut UnixStream, body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame).expect("send");
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("answer");
    let mut answer = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut answer).expect("answer body");
    answer
}

/// What ssh signs to log in with `key_blob` (RFC 4252 section 7, OpenSSH's hostbound
/// method): the only data the agent signs besides SSHSIG blobs.
fn userauth_request(key_blob: &[u8]) -> Vec<u8> {
    use ssh_encoding::{Decode, Encode};
    let algorithm = String::decode(&mut &key_blob[..]).expect("key type");
    let mut data = Vec::new();
    [0x5au8; 32]
        .as_slice()
        .encode(&mut data)
        .expect("session id");
    data.push(50);
    for field in [
        "bench",
        "ssh-connection",
        "publickey-hostbound-v00@openssh.com",
    ] {
        field.encode(&mut data).expect("field");
    }
    data.push(1);
    algorithm.encode(&mut data).expect("algorithm");
    key_blob.encode(&mut data).expect("key blob");
    let host_key = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([7; 32]));
    let mut host_key_blob = Vec::new();
    host_key.encode(&mut host_key_blob).expect("host key");
    host_key_blob.encode(&mut data).expect("host key blob");
    data
}

fn sign_request(key_blob: &[u8]) -> Vec<u8> {
    use ssh_encoding::Encode;
    let mut body = vec![13u8];
    key_blob.encode(&mut body).expect("key blob");
    userauth_request(key_blob).encode(&mut body).expect("data");
    0u32.encode(&mut body).expect("flags");
    body
}

/// The first identity's key blob, as the agent lists it.
fn first_identity(socket: &Path) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    let answer = roundtrip(&mut stream, &[11]);
    assert_eq!(answer[0], 12, "identities answer");
    assert!(u32::from_be_bytes(answer[1..5].try_into().unwrap()) >= 1);
    let len = u32::from_be_bytes(answer[5..9].try_into().unwrap()) as usize;
    answer[9..9 + len].to_vec()
}

/// `CLIENTS` connections at once, each sending `REQUESTS_PER_CLIENT` sign requests.
fn batch(socket: &Path, request: &Arc<Vec<u8>>) -> Duration {
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.to_path_buf();
            let request = Arc::clone(request);
            std::thread::spawn(move || {
                let mut stream = UnixStream::connect(&socket).expect("connect");
                for _ in 0..REQUESTS_PER_CLIENT {
                    let answer = roundtrip(&mut stream, &request);
                    assert_eq!(answer[0], 14, "sign response");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    start.elapsed()
}

struct OpensshAgent {
    child: Child,
    socket: PathBuf,
}

impl OpensshAgent {
    fn start(dir: &Path) -> OpensshAgent {
        let key = dir.join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success());
        let socket = dir.join("openssh-agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent (openssh-client)");
        // Ready once it accepts a connection: the socket file exists a moment before
        // ssh-agent listens on it. The socket is in this run's own directory, so nothing
        // else can answer.
        let mut waited = 0;
        while UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ssh-agent exited ({status}) before listening on {socket:?}");
            }
            assert!(
                waited < 500,
                "ssh-agent did not listen on {socket:?} within 10 s"
            );
            waited += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .status()
            .expect("run ssh-add");
        assert!(status.success());
        OpensshAgent { child, socket }
    }
}

impl Drop for OpensshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `agent` on `socket` from a runtime of its own (two workers, as the machine has).
fn serve(agent: Agent, socket: &Path) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(agent.renew_certificates())
        .expect("first certificate");
    let listener = runtime
        .block_on(async { tokio::net::UnixListener::bind(socket) })
        .expect("bind");
    runtime.spawn(async move { agent.serve(listener).await });
    runtime
}

fn sign_throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let openssh = OpensshAgent::start(dir.path());

    let certificate_socket = dir.path().join("certificate.sock");
    let ca = Arc::new(LocalSigner::generate(KeyType::P256).expect("CA key"));
    let certificate_agent = Agent::builder()
        .certificate_authority(ca, CertificateOptions::new(["bench"]))
        .build()
        .expect("agent");
    let _certificate_runtime = serve(certificate_agent, &certificate_socket);

    let managed_socket = dir.path().join("managed.sock");
    let key = Arc::new(LocalSigner::generate(KeyType::Ed25519).expect("key"));
    let managed_agent = Agent::builder().key(key).build().expect("agent");
    let _managed_runtime = serve(managed_agent, &managed_socket);

    let targets = [
        ("openssh ssh-agent (ed25519)", openssh.socket.clone()),
        ("remote-signer certificate mode", certificate_socket),
        ("remote-signer managed ed25519 key", managed_socket),
    ];
    let tallies: Vec<Arc<Mutex<Tally>>> = targets.iter().map(|_| Arc::default()).collect();

    let mut group = c.benchmark_group("ssh_agent_sign");
    group
        .throughput(Throughput::Elements((CLIENTS * REQUESTS_PER_CLIENT) as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for ((name, socket), tally) in targets.iter().zip(&tallies) {
        let request = Arc::new(sign_request(&first_identity(socket)));
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch(socket, &request);
                }
                let mut tally = tally.lock().unwrap();
                tally.requests += iters * (CLIENTS * REQUESTS_PER_CLIENT) as u64;
                tally.elapsed += total;
                total
            })
        });
    }
    group.finish();

    let baseline = tallies[0].lock().unwrap().per_second();
    println!(
        "\nssh_agent sign requests/s, {CLIENTS} concurrent clients: {} {baseline:.0}",
        targets[0].0
    );
    for ((name, _), tally) in targets.iter().zip(&tallies).skip(1) {
        let rate = tally.lock().unwrap().per_second();
        println!(
            "  {name}: {rate:.0} req/s, ratio {:.2} against OpenSSH's agent",
            rate / baseline
        );
    }
}

criterion_group!(benches, sign_throughput);
criterion_main!(benches);
