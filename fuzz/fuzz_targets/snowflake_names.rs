//! Snowflake account and user names as a configuration or command line gives them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_signer::snowflake::{normalize_account, normalize_user};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(account) = normalize_account(text) {
        // One label of the input, uppercased: never empty, never dotted, never longer.
        assert!(!account.is_empty() && account.len() <= text.len());
        assert!(!account.contains('.'));
        assert!(text.to_ascii_uppercase().starts_with(&account));
        assert_eq!(account, account.to_ascii_uppercase());
    }
    if let Ok(user) = normalize_user(text) {
        assert!(!user.trim().is_empty());
        assert!(!user.chars().any(char::is_control));
    }
});
