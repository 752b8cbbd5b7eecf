//! Servers and helpers shared by the integration tests, examples and benches.

#[cfg(feature = "azure")]
pub mod keyvault;
#[cfg(feature = "azure")]
pub mod retry_timer;
pub mod snowflake_sql_api;
#[cfg(feature = "ssh-agent")]
pub mod ssh;
