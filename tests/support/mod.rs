//! Servers and helpers shared by the integration tests. Each test binary (`integration`, and the
//! ones that need a process of their own) declares `mod support;` and uses the parts it needs.
#![allow(dead_code)] // each test binary uses a different part

pub mod examples;
pub mod faulty;
pub mod graveyard;
pub mod keys;
#[cfg(feature = "azure")]
pub mod keyvault;
pub mod public_only;
#[cfg(feature = "azure")]
pub mod retry_timer;
pub mod snowflake_sql_api;
#[cfg(feature = "ssh-agent")]
pub mod ssh;
