//! Credentials from the standard environment, in `DefaultAzureCredential` order.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind as AzKind;
use azure_core::http::{ClientOptions, Context, Method, Request, Transport, Url};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::error::{CredentialFailure, describe};
use crate::error::{Error, ErrorKind, Result};

/// How long the first managed-identity request may take before the endpoint is taken to be
/// absent (not on Azure) and the `az` CLI is tried instead.
const MANAGED_IDENTITY_PROBE: Duration = Duration::from_secs(3);

/// How long the instance metadata endpoint may take to answer at all before it is taken to be
/// absent, as the other Azure SDKs' `DefaultAzureCredential` probes it: one request, no
/// retries (the SDK's managed-identity client retries a refused connection for seconds).
const IMDS_REACHABLE: Duration = Duration::from_secs(1);

/// The instance metadata service's token endpoint, asked without a resource: any HTTP answer
/// means it is there.
const IMDS_PROBE_URL: &str =
    "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01";

/// Variables that point managed identity at another endpoint than IMDS (App Service, Cloud
/// Shell, Service Fabric, Azure Arc); the probe does not apply then.
const OTHER_IDENTITY_ENDPOINTS: [&str; 4] = [
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
];

/// A [`TokenCredential`] chosen from the standard environment, in the order the other Azure
/// SDKs' `DefaultAzureCredential` uses:
///
/// 1. client secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`;
/// 2. workload identity: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`;
/// 3. managed identity (user-assigned when `AZURE_CLIENT_ID` is set);
/// 4. the `az` CLI's signed-in account (`AZURE_TENANT_ID` selects the tenant).
///
/// When the variables of 1 or 2 are set, that credential is the only one used, and its
/// failures are final. Otherwise managed identity is tried first; if its endpoint does not
/// answer (within 3 s on the first request) or has no identity, the `az` CLI is used, and the
/// first source that succeeds is kept. Where managed identity means the instance metadata
/// service, one request without retries first checks that it answers at all (within 1 s), so
/// a machine off Azure goes to the `az` CLI without waiting out the SDK's retries. `AZURE_AUTHORITY_HOST` (https only) replaces the public
/// cloud's Entra endpoint for 1 and 2.
pub struct DefaultCredential {
    source: Source,
}

enum Source {
    ClientSecret(Arc<ClientSecretCredential>),
    Workload(Arc<WorkloadIdentityCredential>),
    Fallback {
        managed: Arc<ManagedIdentityCredential>,
        /// Set when managed identity means IMDS: the transport to check that it answers.
        imds: Option<Transport>,
        cli: Arc<AzureCliCredential>,
        /// Which of the two answered first (0 managed identity, 1 az CLI).
        chosen: Mutex<Option<usize>>,
    },
}

impl fmt::Debug for DefaultCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultCredential")
            .field("source", &self.source_name())
            .finish()
    }
}

impl DefaultCredential {
    /// Chooses a credential from the process environment. HTTP requests use the SDK's default
    /// transport options.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when set variables are invalid (a malformed tenant id, a
    /// non-https `AZURE_AUTHORITY_HOST`).
    pub fn from_env(client_options: ClientOptions) -> Result<Arc<Self>> {
        Self::from_vars(|name| std::env::var(name).ok(), client_options)
    }

    /// Like [`from_env`](Self::from_env), reading the variables through `var` (for tests and
    /// for configuration that does not live in the environment).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        mut client_options: ClientOptions,
    ) -> Result<Arc<Self>> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let config = |why: String| Error::with_context(ErrorKind::Config, why);
        let cloud = match var("AZURE_AUTHORITY_HOST") {
            Some(host) => {
                if !host.starts_with("https://") {
                    return Err(config("AZURE_AUTHORITY_HOST must be an https URL".into()));
                }
                let mut custom = CustomConfiguration::default();
                custom.authority_host = host;
                CloudConfiguration::Custom(custom)
            }
            None => CloudConfiguration::AzurePublic,
        };
        client_options.cloud = Some(Arc::new(cloud));
        let tenant = var("AZURE_TENANT_ID");
        let client_id = var("AZURE_CLIENT_ID");
        let failed = |what: &'static str| {
            move |_| {
                config(format!(
                    "cannot set up the {what} credential (check AZURE_TENANT_ID and AZURE_CLIENT_ID)"
                ))
            }
        };

        let source = match (
            &tenant,
            &client_id,
            var("AZURE_CLIENT_SECRET"),
            var("AZURE_FEDERATED_TOKEN_FILE"),
        ) {
            (Some(tenant), Some(client_id), Some(secret), _) => {
                let options = ClientSecretCredentialOptions { client_options };
                Source::ClientSecret(
                    ClientSecretCredential::new(
                        tenant,
                        client_id.clone(),
                        Secret::new(secret),
                        Some(options),
                    )
                    .map_err(failed("client secret"))?,
                )
            }
            (Some(tenant), Some(client_id), None, Some(file)) => {
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions { client_options },
                    client_id: Some(client_id.clone()),
                    tenant_id: Some(tenant.clone()),
                    token_file_path: Some(file.into()),
                };
                Source::Workload(
                    WorkloadIdentityCredential::new(Some(options))
                        .map_err(failed("workload identity"))?,
                )
            }
            _ => {
                let imds = (!OTHER_IDENTITY_ENDPOINTS
                    .iter()
                    .any(|name| var(name).is_some()))
                .then(|| client_options.transport.clone().unwrap_or_default());
                let managed =
                    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                        user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                        client_options,
                    }))
                    .map_err(failed("managed identity"))?;
                let cli = AzureCliCredential::new(Some(AzureCliCredentialOptions {
                    tenant_id: tenant.clone(),
                    ..Default::default()
                }))
                .map_err(failed("az CLI"))?;
                Source::Fallback {
                    managed,
                    imds,
                    cli,
                    chosen: Mutex::new(None),
                }
            }
        };
        Ok(Arc::new(DefaultCredential { source }))
    }

    /// Which source is in use: `client secret`, `workload identity`, `managed identity`,
    /// `az CLI`, or `managed identity or az CLI` before the first token.
    pub fn source_name(&self) -> &'static str {
        match &self.source {
            Source::ClientSecret(_) => "client secret",
            Source::Workload(_) => "workload identity",
            Source::Fallback { chosen, .. } => {
                match *chosen.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(0) => "managed identity",
                    Some(_) => "az CLI",
                    None => "managed identity or az CLI",
                }
            }
        }
    }
}

/// Whether the instance metadata service answers (any HTTP status) within [`IMDS_REACHABLE`].
async fn imds_answers(transport: &Transport) -> bool {
    let Ok(url) = Url::parse(IMDS_PROBE_URL) else {
        return false;
    };
    let mut request = Request::new(url, Method::Get);
    request.insert_header("metadata", "true");
    let context = Context::new();
    matches!(
        tokio::time::timeout(IMDS_REACHABLE, transport.send(&context, &mut request)).await,
        Ok(Ok(_))
    )
}

fn fail(failure: CredentialFailure) -> azure_core::Error {
    azure_core::Error::new(AzKind::Credential, failure)
}

#[async_trait]
impl TokenCredential for DefaultCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        match &self.source {
            Source::ClientSecret(c) => c
                .get_token(scopes, options)
                .await
                .map_err(|e| fail(describe("client secret", &e))),
            Source::Workload(c) => c
                .get_token(scopes, options)
                .await
                .map_err(|e| fail(describe("workload identity", &e))),
            Source::Fallback {
                managed,
                imds,
                cli,
                chosen,
            } => {
                let already = *chosen.lock().unwrap_or_else(|e| e.into_inner());
                match already {
                    Some(0) => {
                        return managed
                            .get_token(scopes, options)
                            .await
                            .map_err(|e| fail(describe("managed identity", &e)));
                    }
                    Some(_) => {
                        return cli
                            .get_token(scopes, options)
                            .await
                            .map_err(|e| fail(describe("az CLI", &e)));
                    }
                    None => {}
                }
                let reachable = match imds {
                    Some(transport) => imds_answers(transport).await,
                    None => true,
                };
                if reachable {
                    let probe = tokio::time::timeout(
                        MANAGED_IDENTITY_PROBE,
                        managed.get_token(scopes, options.clone()),
                    )
                    .await;
                    if let Ok(Ok(token)) = probe {
                        *chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(0);
                        return Ok(token);
                    }
                }
                match cli.get_token(scopes, options).await {
                    Ok(token) => {
                        *chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(1);
                        Ok(token)
                    }
                    Err(_) => Err(fail(CredentialFailure {
                        text: "no credential: set AZURE_TENANT_ID, AZURE_CLIENT_ID and \
                               AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE), run on \
                               Azure with a managed identity, or sign in with `az login`"
                            .to_string(),
                        transient: None,
                    })),
                }
            }
        }
    }
}
