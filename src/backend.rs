//! Where keys live. Applications use [`RemoteSigner`](crate::RemoteSigner) and never name a
//! backend; the backends are here for constructing signers.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(any(feature = "azure", feature = "aws"))]
mod check;
pub mod local;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(any(feature = "azure", feature = "aws"))]
mod stats;

/// Text this crate did not write (an error code, a request id or a key attribute a service
/// sent; an attribute name from a PKCS#11 URI), fit for an error text or a log line: at most
/// `max` characters of a safe alphabet, ASCII letters and digits, `-`, `_`, `.` and `,`, with
/// everything else dropped. Such a value can then never smuggle a body, a quote, a control
/// character or a second line into what the user sees.
///
/// The alphabet is that of identifiers (AWS error codes and request ids, Key Vault codes, curve
/// and key type names), plus `,` because Entra's token endpoint sends its error codes as a list
/// that the Azure SDK joins with commas (`123,456`); a comma is harmless in the other values.
/// [`printable`](crate::error::printable) is the other job: it escapes a caller's own text
/// (a path, a key reference) in full rather than cutting it down.
#[cfg(any(feature = "azure", feature = "aws", feature = "pkcs11"))]
pub(crate) fn safe_text(value: &str, max: usize) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ','))
        .take(max)
        .collect()
}

#[cfg(all(test, any(feature = "azure", feature = "aws", feature = "pkcs11")))]
mod tests {
    use super::*;

    #[test]
    fn safe_text_is_cut_to_a_safe_alphabet() {
        let long = format!("{}\"}} secret", "Z".repeat(300));
        let s = safe_text(&long, 64);
        assert!(s.len() <= 64 && !s.contains('"') && !s.contains(' '));
        assert_eq!(safe_text("Bad\u{1b}[31m\ncode", 64), "Bad31mcode");
        assert_eq!(safe_text("50027,7000215", 64), "50027,7000215");
    }
}
