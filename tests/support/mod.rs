//! Servers and helpers shared by the integration tests, examples and benches.

pub mod keyvault;
pub mod snowflake_sql_api;
