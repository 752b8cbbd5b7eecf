//! The Key Vault emulator (the `keyvault-emulator` workspace crate), and the signers the tests
//! open on it. The signers live here, not in the emulator crate: a dependency of the emulator on
//! this library would give the tests a second copy of the library's types.

use std::sync::Arc;
use std::time::Duration;

pub use keyvault_emulator::*;
use remote_signer::RemoteSigner;
use remote_signer::backend::azure::{KeyVaultSigner, KeyVaultSignerBuilder, RetryPolicy};

/// Signers opened on an [`Emulator`].
pub trait EmulatorSigners {
    /// A signer builder for `url` set up for this emulator: the client-secret credential from
    /// [`Emulator::env`] (passed in, not through the process environment), the CA trusted in
    /// code, the challenge-resource check off (127.0.0.1 is not under vault.azure.net), and
    /// quick retries (3 retries, 10-40 ms apart, 20 s in all).
    fn signer_builder(&self, url: &str) -> KeyVaultSignerBuilder;

    /// A signer for the current version of key `name`, through the official SDK and TLS, as
    /// an application would hold it.
    ///
    /// # Panics
    /// If the key cannot be opened.
    fn signer(&self, name: &str) -> impl std::future::Future<Output = Arc<dyn RemoteSigner>>;
}

impl EmulatorSigners for Emulator {
    fn signer_builder(&self, url: &str) -> KeyVaultSignerBuilder {
        let vars = self.env().into_iter().filter(|(k, _)| k != "SSL_CERT_FILE");
        KeyVaultSigner::builder(url)
            .environment(vars)
            .add_root_certificate_pem(self.ca_pem())
            .verify_challenge_resource(false)
            .retry(
                RetryPolicy::default()
                    .max_retries(3)
                    .initial_backoff(Duration::from_millis(10))
                    .max_backoff(Duration::from_millis(40))
                    .attempt_timeout(Duration::from_secs(10))
                    .max_elapsed(Duration::from_secs(20)),
            )
    }

    async fn signer(&self, name: &str) -> Arc<dyn RemoteSigner> {
        let url = self.key_url(name, None);
        Arc::new(
            self.signer_builder(&url)
                .build()
                .await
                .expect("open emulator key"),
        )
    }
}
