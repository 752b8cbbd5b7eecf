//! The agent server: identities, request dispatch and the connection loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;

use super::certificate::CertificateOptions;
use super::identity::{CertifiedSurrogate, ManagedKey};
use super::protocol::{self, Request};
use super::signed_data;
use super::with_causes;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::signer::RemoteSigner;

/// Where this module logs: the module's public path, whatever the source layout.
const LOG_TARGET: &str = "remote_signer::ssh::agent";

/// The default cap on one message (OpenSSH's agent uses the same).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 256 * 1024;

/// The default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// The default time a message may take to arrive once its first byte has.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// An ssh-agent whose identities are managed keys, or short-lived certificates they sign.
///
/// Cheap to clone; clones share identities and certificates. Build one with
/// [`Agent::builder`], then [`serve`](Agent::serve) a listener, or answer single messages
/// with [`respond`](Agent::respond).
#[derive(Clone, Debug)]
pub struct Agent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    managed: Vec<ManagedKey>,
    certified: Vec<Arc<CertifiedSurrogate>>,
    max_message_len: usize,
    max_connections: usize,
    message_timeout: Duration,
    sign_any_data: bool,
}

/// Builds an [`Agent`]. Nothing is checked or signed until [`build`](AgentBuilder::build).
#[must_use]
pub struct AgentBuilder {
    managed: Vec<(Arc<dyn RemoteSigner>, Option<String>)>,
    certified: Vec<(Arc<dyn RemoteSigner>, CertificateOptions)>,
    clock: Arc<dyn Clock>,
    max_message_len: usize,
    max_connections: usize,
    message_timeout: Duration,
    sign_any_data: bool,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("managed", &self.managed.len())
            .field("certified", &self.certified.len())
            .field("max_message_len", &self.max_message_len)
            .field("max_connections", &self.max_connections)
            .field("message_timeout", &self.message_timeout)
            .field("sign_any_data", &self.sign_any_data)
            .finish_non_exhaustive()
    }
}

impl Default for AgentBuilder {
    fn default() -> Self {
        AgentBuilder {
            managed: Vec::new(),
            certified: Vec::new(),
            clock: Arc::new(crate::clock::SystemClock),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            sign_any_data: false,
        }
    }
}

impl AgentBuilder {
    /// Offers `signer` itself as an identity, listed with its key id as the comment. Every
    /// sign request for it is a call to the managed key, and only for what SSH clients sign
    /// (see [`dangerous_sign_any_data`](AgentBuilder::dangerous_sign_any_data)).
    pub fn key(mut self, signer: Arc<dyn RemoteSigner>) -> Self {
        self.managed.push((signer, None));
        self
    }

    /// Offers `signer` itself as an identity, listed with `comment`.
    pub fn key_with_comment(
        mut self,
        signer: Arc<dyn RemoteSigner>,
        comment: impl Into<String>,
    ) -> Self {
        self.managed.push((signer, Some(comment.into())));
        self
    }

    /// Uses `ca` as an OpenSSH user CA: the agent offers an in-memory Ed25519 surrogate with a
    /// short-lived certificate signed by `ca`, renewed ahead of expiry. `ca` itself is never
    /// offered, so no local process can have it mint certificates: [`build`](AgentBuilder::build)
    /// refuses a key that is both a CA and an identity given with [`key`](AgentBuilder::key).
    pub fn certificate_authority(
        mut self,
        ca: Arc<dyn RemoteSigner>,
        options: CertificateOptions,
    ) -> Self {
        self.certified.push((ca, options));
        self
    }

    /// The clock certificates are minted, renewed and checked against (default: the system
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The largest message accepted (default [`DEFAULT_MAX_MESSAGE_LEN`], 256 KiB). Larger ones
    /// are skipped unread and answered with `SSH_AGENT_FAILURE`.
    pub fn max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max;
        self
    }

    /// How many connections are served at once (default [`DEFAULT_MAX_CONNECTIONS`], 256).
    /// When a new connection arrives at the cap, the connection idle the longest is closed to
    /// admit it (and this is logged): `ssh` holds an agent connection open for a whole session,
    /// so idle connections must not lock new clients out.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a message may take to arrive once its first byte has, and an answer to be
    /// written (default [`DEFAULT_MESSAGE_TIMEOUT`], 10 s). A client that stalls mid-message
    /// or stops reading answers is disconnected, so it cannot hold a connection slot; an idle
    /// connection between messages is kept open, as `ssh` holds one for a whole session.
    pub fn message_timeout(mut self, timeout: Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Signs whatever a client sends, not only SSH user-authentication requests and SSHSIG
    /// blobs (default: off).
    ///
    /// **Dangerous**: with it, any process that reaches the socket (any local process of the
    /// user, or root on every host the agent is forwarded to) can have the managed keys sign
    /// JWS tokens, surrogate and OpenSSH certificates, or Snowflake JWTs, forging credentials of
    /// every other protocol that trusts the same keys. It exists only for clients that use an
    /// agent for other protocols: `ssh-keygen -s` with an agent-held CA key, and
    /// `pam_ssh_agent_auth`. Give such a client its own key, used for nothing else.
    pub fn dangerous_sign_any_data(mut self) -> Self {
        self.sign_any_data = true;
        self
    }

    /// Checks the configuration and builds the agent. Certificates are minted on first use, or
    /// by [`Agent::renew_certificates`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an agent without identities, a key given twice, a key that is
    /// both a certificate authority and an identity, certificate options without principals, a
    /// connection cap or message timeout of zero;
    /// [`ErrorKind::UnsupportedKey`] for a key with no SSH form (EC P-256K).
    pub fn build(self) -> Result<Agent> {
        if self.managed.is_empty() && self.certified.is_empty() {
            return Err(Error::with_context(
                ErrorKind::Config,
                "the agent has no keys",
            ));
        }
        if self.max_connections == 0 || self.message_timeout.is_zero() {
            return Err(Error::with_context(
                ErrorKind::Config,
                "the connection cap and the message timeout must not be zero",
            ));
        }
        let mut managed: Vec<ManagedKey> = Vec::new();
        for (signer, comment) in self.managed {
            let key = ManagedKey::new(signer, comment)?;
            if managed.iter().any(|k| k.blob == key.blob) {
                return Err(Error::with_context(
                    ErrorKind::Config,
                    format!("key {} is given twice", key.signer().key_id()),
                ));
            }
            managed.push(key);
        }
        let mut certified: Vec<Arc<CertifiedSurrogate>> = Vec::new();
        for (ca, options) in self.certified {
            let surrogate = CertifiedSurrogate::new(ca, options, Arc::clone(&self.clock))?;
            let key_id = surrogate.ca().key_id();
            if managed.iter().any(|k| k.blob == surrogate.ca_blob) {
                return Err(Error::with_context(
                    ErrorKind::Config,
                    format!(
                        "key {key_id} is both a certificate authority and an offered identity; \
                         an agent that offers its CA key lets any process that reaches the \
                         socket sign certificates for any principal: use another key for one role"
                    ),
                ));
            }
            if certified.iter().any(|c| c.ca_blob == surrogate.ca_blob) {
                return Err(Error::with_context(
                    ErrorKind::Config,
                    format!("certificate authority {key_id} is given twice"),
                ));
            }
            certified.push(Arc::new(surrogate));
        }
        if self.sign_any_data {
            log::warn!(
                target: LOG_TARGET,
                "the agent signs any data it is sent, not only SSH logins and SSHSIG blobs: \
                 every process that reaches its socket can forge other protocols' credentials \
                 with these keys"
            );
        }
        Ok(Agent {
            inner: Arc::new(Inner {
                managed,
                certified,
                max_message_len: self.max_message_len,
                max_connections: self.max_connections,
                message_timeout: self.message_timeout,
                sign_any_data: self.sign_any_data,
            }),
        })
    }
}

impl Agent {
    /// A builder with no identities.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// Mints a fresh certificate for every certificate authority now (each a managed-key
    /// call). Useful at start-up, to fail early when a CA cannot sign.
    ///
    /// # Errors
    /// The first CA's signing error.
    pub async fn renew_certificates(&self) -> Result<()> {
        for certified in &self.inner.certified {
            certified.renew().await?;
        }
        Ok(())
    }

    /// The renewal state of each certificate authority's certificate, in the order they were
    /// given: CA operations so far, the current certificate's expiry, the next renewal and the
    /// last failure.
    pub fn certificate_status(&self) -> Vec<crate::renewal::RotationStatus> {
        self.inner.certified.iter().map(|c| c.status()).collect()
    }

    /// Answers one agent message: `message` is the body after the length prefix, the result is
    /// the body of the answer. Unknown, refused or malformed messages and failed signatures get
    /// `SSH_AGENT_FAILURE` (`[5]`); failures of a managed key are logged with their cause.
    ///
    /// A sign request is answered only when its data is an SSH user-authentication request
    /// (RFC 4252 section 7, methods `publickey` and `publickey-hostbound-v00@openssh.com`) whose
    /// key blob is the key or certificate asked to sign, or an SSHSIG blob (`ssh-keygen -Y
    /// sign`, git); anything else is refused and the reason (never the data) is logged, unless
    /// the agent was built with [`AgentBuilder::dangerous_sign_any_data`].
    pub async fn respond(&self, message: &[u8]) -> Vec<u8> {
        match Request::decode(message) {
            Ok(Request::Identities) => self.identities().await,
            Ok(Request::Sign {
                key_blob,
                data,
                flags,
            }) => self.sign(key_blob, data, flags).await,
            Ok(Request::Unsupported(kind)) => {
                log::debug!(
                    target: LOG_TARGET,
                    "refused agent message {} ({kind}): this agent only lists and signs",
                    protocol::message_name(kind)
                );
                protocol::failure()
            }
            Err(why) => {
                log::debug!(target: LOG_TARGET, "refused malformed agent message: {why}");
                protocol::failure()
            }
        }
    }

    async fn identities(&self) -> Vec<u8> {
        let mut certificates = Vec::new();
        // Never waits for a renewal (only for a first certificate): an expired certificate is
        // left out at once.
        for certified in &self.inner.certified {
            if let Some(minted) = certified.usable().await {
                certificates.push((minted, certified.comment()));
            }
        }
        let managed = self
            .inner
            .managed
            .iter()
            .map(|k| (k.blob.as_slice(), k.comment.as_str()));
        let certified = certificates
            .iter()
            .map(|(m, comment)| (m.certificate_blob.as_slice(), comment.as_str()));
        let all: Vec<_> = certified.chain(managed).collect();
        protocol::identities_answer(all.into_iter())
    }

    async fn sign(&self, key_blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        // A certificate for a managed key (issued elsewhere) is answered by that key, as
        // OpenSSH's agent does.
        let certified_key = protocol::certified_key_blob(key_blob);
        let managed =
            self.inner.managed.iter().find(|k| {
                k.blob == key_blob || certified_key.as_deref() == Some(k.blob.as_slice())
            });
        if let Some(key) = managed {
            if !self.may_sign(data, key_blob, key.signer().key_id()) {
                return protocol::failure();
            }
            return match key.sign(data, flags).await {
                Ok(signature) => protocol::sign_response(&signature),
                Err(e) => {
                    if e.kind() == ErrorKind::Algorithm {
                        log::info!(
                            target: LOG_TARGET,
                            "refused sign request for {}: {e}",
                            key.signer().key_id(),
                        );
                    } else {
                        log::error!(
                            target: LOG_TARGET,
                            "managed key {} failed to sign: {}",
                            key.signer().key_id(),
                            with_causes(&e)
                        );
                    }
                    protocol::failure()
                }
            };
        }
        // Only certificates already offered can match: a sign request never mints one, so
        // requests for unknown keys cost no managed-key call.
        for certified in &self.inner.certified {
            if let Some(minted) = certified.find(key_blob) {
                if !self.may_sign(data, key_blob, certified.ca().key_id()) {
                    return protocol::failure();
                }
                return match minted.sign(data) {
                    Ok(signature) => protocol::sign_response(&signature),
                    Err(e) => {
                        log::error!(
                            target: LOG_TARGET,
                            "surrogate of CA {} failed: {e}",
                            certified.ca().key_id(),
                        );
                        protocol::failure()
                    }
                };
            }
        }
        log::debug!(target: LOG_TARGET, "sign request for a key this agent does not hold");
        protocol::failure()
    }

    /// Whether `data` is something an SSH client signs with `key_blob` (or anything goes);
    /// logs the reason of a refusal.
    fn may_sign(&self, data: &[u8], key_blob: &[u8], key_id: &crate::KeyId) -> bool {
        match signed_data::check(data, key_blob) {
            Ok(kind) => {
                log::debug!(target: LOG_TARGET, "signing {kind} with {key_id}");
                true
            }
            Err(_) if self.inner.sign_any_data => true,
            Err(reason) => {
                log::warn!(target: LOG_TARGET, "refused to sign with {key_id}: {reason}");
                false
            }
        }
    }

    /// Serves one connection until the peer closes it. Messages are answered in order.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when reading or writing the connection fails; [`ErrorKind::Timeout`]
    /// when a message stalls (see [`AgentBuilder::message_timeout`]).
    pub async fn serve_connection<S>(&self, stream: S) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.serve_tracked(stream, &Activity::new()).await
    }

    /// [`serve_connection`](Agent::serve_connection), noting in `activity` when the connection
    /// last did something.
    async fn serve_tracked<S>(&self, mut stream: S, activity: &Activity) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let io = |e: std::io::Error| {
            Error::with_context(ErrorKind::Io, format!("agent connection: {}", e.kind()))
        };
        let mut message = Vec::new();
        loop {
            // Between messages the connection may idle for as long as the client likes.
            let mut prefix = [0u8; 4];
            match stream.read_exact(&mut prefix[..1]).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(io(e)),
            }
            let busy = activity.busy();
            // Once it has begun, the message must arrive within the timeout.
            let received = tokio::time::timeout(self.inner.message_timeout, async {
                stream.read_exact(&mut prefix[1..]).await?;
                let len = u32::from_be_bytes(prefix) as usize;
                if len > self.inner.max_message_len {
                    // Skipped without buffering, so the connection stays in step.
                    let skipped = tokio::io::copy(
                        &mut (&mut stream).take(len as u64),
                        &mut tokio::io::sink(),
                    )
                    .await?;
                    if skipped < len as u64 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    }
                    return Ok(None);
                }
                message.resize(len, 0);
                stream.read_exact(&mut message).await?;
                Ok::<_, std::io::Error>(Some(()))
            })
            .await;
            let answer = match received {
                Err(_) => {
                    return Err(Error::with_context(
                        ErrorKind::Timeout,
                        "agent connection: a message stalled; disconnected",
                    ));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(e)) => return Err(io(e)),
                Ok(Ok(None)) => {
                    log::debug!(target: LOG_TARGET, "refused oversized agent message");
                    protocol::failure()
                }
                Ok(Ok(Some(()))) => self.respond(&message).await,
            };
            // Idle again from here: by the time the client has the answer, the connection
            // counts as idle since before it was sent (writing is bounded on its own).
            drop(busy);
            let mut frame = Vec::with_capacity(4 + answer.len());
            frame.extend_from_slice(&(answer.len() as u32).to_be_bytes());
            frame.extend_from_slice(&answer);
            let written = tokio::time::timeout(self.inner.message_timeout, async {
                stream.write_all(&frame).await?;
                stream.flush().await
            })
            .await;
            match written {
                Ok(result) => result.map_err(io)?,
                Err(_) => {
                    return Err(Error::with_context(
                        ErrorKind::Timeout,
                        "agent connection: the client stopped reading answers; disconnected",
                    ));
                }
            }
        }
    }

    /// Serves every connection to `listener` until the returned future is dropped.
    ///
    /// Connections from other users than this process's real uid (root excepted) are closed
    /// unanswered, as OpenSSH's agent does, and so are connections whose peer credentials
    /// cannot be read. At the connection cap the longest-idle connection is closed to admit a
    /// new one. Certificates are renewed in the background ahead of expiry.
    pub async fn serve(&self, listener: UnixListener) {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Like [`serve`](Agent::serve), until `shutdown` completes; then open connections are
    /// closed (a request in progress is abandoned) and background renewal stops.
    pub async fn serve_until(&self, listener: UnixListener, shutdown: impl Future<Output = ()>) {
        let mut background = tokio::task::JoinSet::new();
        for certified in &self.inner.certified {
            let certified = Arc::clone(certified);
            background.spawn(async move { certified.renew_ahead().await });
        }
        let own_uid = rustix::process::getuid().as_raw();
        let connections = Arc::new(std::sync::Mutex::new(Connections::default()));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                // Reaps finished connections so the set does not grow.
                Some(_) = background.join_next() => continue,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually out of file descriptors: wait for some to be released.
                    log::warn!(target: LOG_TARGET, "agent cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(peer) if peer.uid() == own_uid || peer.uid() == 0 => {}
                Ok(peer) => {
                    log::warn!(
                        target: LOG_TARGET,
                        "refused agent connection from uid {}",
                        peer.uid(),
                    );
                    continue;
                }
                Err(e) => {
                    log::warn!(
                        target: LOG_TARGET,
                        "refused agent connection: the peer's credentials cannot be read ({})",
                        e.kind()
                    );
                    continue;
                }
            }
            let mut open = lock(&connections);
            if open.by_id.len() >= self.inner.max_connections {
                open.close_longest_idle(self.inner.max_connections);
            }
            let id = open.next_id;
            open.next_id += 1;
            let activity = Arc::new(Activity::new());
            let agent = self.clone();
            let served = Arc::clone(&activity);
            let forget = ForgetOnDrop {
                connections: Arc::clone(&connections),
                id,
            };
            let handle = background.spawn(async move {
                let _forget = forget;
                if let Err(e) = agent.serve_tracked(stream, &served).await {
                    log::debug!(target: LOG_TARGET, "{e}");
                }
            });
            open.by_id.insert(id, (handle, activity));
        }
        background.abort_all();
    }
}

/// When a connection last began or answered a message, and whether it is answering one now.
struct Activity {
    last: std::sync::Mutex<tokio::time::Instant>,
    busy: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
            busy: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Marks the connection busy until the guard is dropped, then active as of that moment.
    fn busy(&self) -> impl Drop + '_ {
        struct Busy<'a>(&'a Activity);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                *lock(&self.0.last) = tokio::time::Instant::now();
                self.0
                    .busy
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        self.busy.store(true, std::sync::atomic::Ordering::Release);
        Busy(self)
    }

    /// How long the connection has been idle (zero while it answers a message).
    fn idle(&self) -> Duration {
        if self.busy.load(std::sync::atomic::Ordering::Acquire) {
            Duration::ZERO
        } else {
            lock(&self.last).elapsed()
        }
    }
}

/// The connections being served, so the longest-idle one can make room for a new one.
#[derive(Default)]
struct Connections {
    next_id: u64,
    by_id: std::collections::HashMap<u64, (tokio::task::AbortHandle, Arc<Activity>)>,
}

impl Connections {
    fn close_longest_idle(&mut self, cap: usize) {
        let longest = self
            .by_id
            .iter()
            .map(|(id, (_, activity))| (*id, activity.idle()))
            .max_by_key(|(_, idle)| *idle);
        if let Some((id, idle)) = longest {
            if let Some((handle, _)) = self.by_id.remove(&id) {
                handle.abort();
            }
            log::info!(
                target: LOG_TARGET,
                "{cap} agent connections are open: closed the one idle longest ({} s) to admit a new one",
                idle.as_secs()
            );
        }
    }
}

/// Removes a connection from [`Connections`] when its task ends or is aborted.
struct ForgetOnDrop {
    connections: Arc<std::sync::Mutex<Connections>>,
    id: u64,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        lock(&self.connections).by_id.remove(&self.id);
    }
}

/// Locks `mutex`; a panic elsewhere while holding it leaves plain bookkeeping behind, still
/// usable.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Agent>();
    }

    #[allow(dead_code)]
    fn serving_is_send(agent: Agent, listener: UnixListener) {
        fn assert_send<T: Send>(_: T) {}
        assert_send(async move { agent.serve(listener).await });
    }
}
