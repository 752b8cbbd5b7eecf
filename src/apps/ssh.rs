//! An ssh-agent backed by managed keys, with short-lived OpenSSH certificates (feature
//! `ssh-agent`).
//!
//! The agent speaks the agent protocol (RFC 9987) on a Unix socket, so `ssh`, `git` and
//! `ssh-keygen -Y sign` use it through `SSH_AUTH_SOCK`. It offers two kinds of identity:
//!
//! - **Managed keys** ([`AgentBuilder::key`]): the key itself, listed with a comment naming it.
//!   Every signature is a call to the managed key. RSA keys answer exactly the SHA-2 algorithm
//!   the request's flags ask for (`rsa-sha2-256` or `rsa-sha2-512`) and refuse SHA-1 `ssh-rsa`;
//!   ECDSA P-256/P-384 signatures are converted to the SSH form.
//! - **Certified surrogates** ([`AgentBuilder::certificate_authority`]): an Ed25519 key that
//!   lives only in memory, with an OpenSSH user certificate the managed key signs as a user CA
//!   (trusted by sshd through `TrustedUserCAKeys`). Logins cost no managed-key call; the
//!   certificate is renewed ahead of expiry by the crate's [renewal engine](crate::renewal), once
//!   however many requests arrive; listing never waits for a renewal, and an expired
//!   certificate is never listed. The CA key itself is never offered, so no local process can
//!   use the agent to mint certificates for other principals.
//!
//! **The agent signs only what SSH clients sign**: an SSH user-authentication request (RFC 4252
//! section 7, methods `publickey` and OpenSSH's `publickey-hostbound-v00@openssh.com`) whose key
//! blob is the key or certificate asked to sign, or an SSHSIG blob (`ssh-keygen -Y sign`, git
//! commit signing). Any other data is refused with `SSH_AGENT_FAILURE` and the reason is logged:
//! a managed key that also signs session cookies, certificates or Snowflake JWTs must not
//! become a signing oracle for them to every process that reaches the socket.
//! [`AgentBuilder::dangerous_sign_any_data`] lifts this for clients of other protocols.
//!
//! The agent answers only `REQUEST_IDENTITIES` and `SIGN_REQUEST`. Adding, removing or locking
//! keys, extensions, unknown and malformed messages are answered with `SSH_AGENT_FAILURE`, and
//! the connection goes on; messages over 256 KiB are skipped unread and refused.
//!
//! ```no_run
//! # async fn run() -> remote_signer::Result<()> {
//! use std::sync::Arc;
//! use remote_signer::backend::local::LocalSigner;
//! use remote_signer::ssh::{Agent, CertificateOptions};
//!
//! let ca = Arc::new(LocalSigner::open("ca.pem")?);
//! let agent = Agent::builder()
//!     .certificate_authority(ca, CertificateOptions::new(["deploy"]))
//!     .build()?;
//! agent.renew_certificates().await?;
//! let listener = tokio::net::UnixListener::bind("/run/user/1000/agent.sock").unwrap();
//! agent.serve(listener).await;
//! # Ok(()) }
//! ```

mod agent;
mod certificate;
mod identity;
mod protocol;
mod signed_data;

pub use agent::{
    Agent, AgentBuilder, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MESSAGE_TIMEOUT,
};
pub use certificate::CertificateOptions;

/// An error's text followed by its sources' texts (which are free of secrets by contract).
fn with_causes(error: &crate::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
