//! Account and user names as the official connectors put them into a key-pair JWT.

use crate::error::{Error, Result};

/// Longest account or user name accepted (Snowflake identifiers are at most 255 characters;
/// an account string with a region and cloud is far shorter).
const MAX_NAME_CHARS: usize = 255;

/// Labels after the account that name a way to reach it rather than a region.
const HOST_LABELS: [&str; 2] = ["privatelink", "snowflakecomputing"];

/// The cloud label of `locator.region.cloud`.
const CLOUDS: [&str; 3] = ["aws", "azure", "gcp"];

/// The account as it appears in the token's `iss` and `sub`.
///
/// The connectors (Python `AuthByKeyPair`, JDBC `SessionUtilKeyPair`, Go `prepareJWTToken`)
/// cut the account identifier at its first `.` and uppercase it, keeping `-` and `_`:
///
/// | given | in the token |
/// |---|---|
/// | `myorg-myaccount` | `MYORG-MYACCOUNT` |
/// | `xy12345` | `XY12345` |
/// | `xy12345.us-east-2.aws` | `XY12345` |
/// | `myorg-myaccount.privatelink` | `MYORG-MYACCOUNT` |
/// | `myorg-myaccount.snowflakecomputing.com` | `MYORG-MYACCOUNT` |
/// | `xy12345-mygroup.global` | `XY12345` |
///
/// Two forms are handled on purpose rather than cut blindly:
///
/// - **`.global`** (`<account>-<connection_group>.global`, the global URL form): the connection
///   group is dropped at the *last* `-` of the first label, so `myorg-myaccount-grp.global`
///   becomes `MYORG-MYACCOUNT`. This is what the Python connector's connection setup
///   (`parse_account`), the JDBC driver (for `.global.` hosts) and the Go driver (for `.global.`
///   hosts) do. Python's `AuthByKeyPair.prepare`, called on its own, cuts at the *first* `-`
///   instead, which turns an `org-account` identifier into the bare organisation name; and a
///   `.global` name with no `-` has no connection group to drop. Both are refused here rather
///   than guessed at.
/// - **`org.account`** (the dotted form used in SQL, e.g. `myorg.myaccount`): every connector
///   silently truncates it to `MYORG`, a token Snowflake then rejects. It is refused with an error
///   that names the `org-account` form. It is told apart from `locator.region[.cloud]` by the
///   label after the first dot: organisation and account names contain only letters, digits
///   and `_`, while a region id always contains a `-` and is either followed by its cloud
///   (`xy12345.us-east-2.aws`, `xy12345.east-us-2.azure`, `xy12345.us-central1.gcp`) or is an
///   AWS region id (`xy12345.us-east-1`, the legacy form Snowflake documents for some AWS
///   regions; `<area>-<words>-<number>`). Anything else after the first dot (other than
///   `privatelink`, `snowflakecomputing` and `global`) is refused too, since cutting it could
///   only guess.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty account, characters
/// outside ASCII letters, digits, `_`, `-` and `.`, an empty label, and the two forms above.
pub fn normalize_account(account: &str) -> Result<String> {
    let bad = |why: String| Error::invalid_input(format!("Snowflake account: {why}"));
    if account.is_empty() {
        return Err(bad("empty account identifier".into()));
    }
    if account.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!("longer than {MAX_NAME_CHARS} characters")));
    }
    if let Some(c) = account
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        let hint = if account.contains("://") || c == '/' {
            " (give the account identifier, not a URL)"
        } else {
            ""
        };
        return Err(bad(format!(
            "character {c:?} is not allowed in an account identifier{hint}"
        )));
    }
    let mut labels = account.split('.');
    let first = labels.next().unwrap_or_default();
    let rest: Vec<&str> = labels.collect();
    if first.is_empty() || rest.iter().any(|label| label.is_empty()) {
        return Err(bad(format!("{account:?} has an empty part between dots")));
    }
    let Some(second) = rest.first() else {
        return Ok(first.to_ascii_uppercase());
    };
    if second.eq_ignore_ascii_case("global") {
        return match first.rfind('-') {
            Some(dash) if dash > 0 => Ok(first[..dash].to_ascii_uppercase()),
            _ => Err(bad(format!(
                "{account:?} is a .global name without a connection group; \
                 the form is <account>-<connection_group>.global"
            ))),
        };
    }
    let is_host = HOST_LABELS.iter().any(|h| second.eq_ignore_ascii_case(h));
    let has_cloud = rest[1..]
        .iter()
        .any(|label| CLOUDS.iter().any(|c| label.eq_ignore_ascii_case(c)));
    let is_aws_region = is_aws_region_id(second);
    let is_region = second.contains('-') && (has_cloud || is_aws_region);
    if !is_region && !is_host {
        let upper = |s: &str| s.to_ascii_uppercase();
        return Err(bad(if second.contains('-') {
            format!(
                "{account:?} is neither locator.region.cloud (e.g. xy12345.east-us-2.azure; only \
                 AWS regions may leave out the cloud) nor org-account; for the dotted \
                 org.account form write {}",
                upper(&format!("{first}-{second}"))
            )
        } else {
            format!(
                "{account:?} looks like the dotted org.account form, which Snowflake clients cut \
                 to {:?}; use the org-account form: {}",
                upper(first),
                upper(&format!("{first}-{second}"))
            )
        }));
    }
    Ok(first.to_ascii_uppercase())
}

/// `us-east-1`, `eu-central-1`, `us-gov-west-1`: a two-letter area, words, a number. Only AWS
/// regions appear without the cloud label (Azure's `east-us-2` and GCP's `us-central1` do not
/// have this shape).
fn is_aws_region_id(label: &str) -> bool {
    let letters = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    let parts: Vec<&str> = label.split('-').collect();
    let [area, words @ .., number] = parts.as_slice() else {
        return false;
    };
    area.len() == 2
        && letters(area)
        && !words.is_empty()
        && words.iter().all(letters)
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The user as it appears in the token's `iss` and `sub`: uppercased (Unicode rules, as Python's
/// `str.upper`), otherwise as given, so `first.last@example.com` becomes
/// `FIRST.LAST@EXAMPLE.COM`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty or blank name, control
/// characters, or more than 255 characters.
pub fn normalize_user(user: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid_input(format!("Snowflake user: {why}"));
    if user.trim().is_empty() {
        return Err(bad("empty user name"));
    }
    if user.chars().count() > MAX_NAME_CHARS {
        return Err(bad("longer than 255 characters"));
    }
    if user.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    Ok(user.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_as_the_connectors_cut_them() {
        for (given, expected) in [
            ("myorg-myaccount", "MYORG-MYACCOUNT"),
            ("my_org-my_account", "MY_ORG-MY_ACCOUNT"),
            ("xy12345", "XY12345"),
            ("xy12345.us-east-2.aws", "XY12345"),
            ("xy12345.us-east-1", "XY12345"),
            ("xy12345.eu-central-1", "XY12345"),
            ("xy12345.ap-southeast-2", "XY12345"),
            ("xy12345.east-us-2.azure", "XY12345"),
            ("xy12345.us-central1.gcp", "XY12345"),
            ("xy12345.us-east-1.privatelink", "XY12345"),
            ("xy12345.east-us-2.azure.privatelink", "XY12345"),
            ("xy12345.us-gov-west-1-fhplus.aws", "XY12345"),
            ("myorg-myaccount.privatelink", "MYORG-MYACCOUNT"),
            ("myorg-myaccount.snowflakecomputing.com", "MYORG-MYACCOUNT"),
            ("xy12345-mygroup.global", "XY12345"),
            ("myorg-myaccount-mygroup.global", "MYORG-MYACCOUNT"),
            ("MyOrg-MyAccount-Grp.GLOBAL", "MYORG-MYACCOUNT"),
        ] {
            assert_eq!(normalize_account(given).unwrap(), expected, "{given}");
        }
    }

    #[test]
    fn refusals_explain_themselves() {
        let err = normalize_account("myorg.myaccount").unwrap_err();
        assert!(err.to_string().contains("MYORG-MYACCOUNT"), "{err}");
        assert!(err.to_string().contains("org-account"), "{err}");
        assert!(normalize_account("my_org.my_account").is_err());
        assert!(normalize_account("myorg.myaccount.aws").is_err());
        let err = normalize_account("myorg.my-account")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MYORG-MY-ACCOUNT"), "{err}");
        let err = normalize_account("xy12345.east-us-2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("locator.region.cloud"), "{err}");
        assert!(
            normalize_account("xy12345.global")
                .unwrap_err()
                .to_string()
                .contains("connection_group")
        );
        assert!(normalize_account("-grp.global").is_err());
        assert!(normalize_account("").is_err());
        assert!(normalize_account("xy12345.").is_err());
        assert!(normalize_account(".xy12345").is_err());
        assert!(normalize_account("a..b").is_err());
        assert!(normalize_account("my org").is_err());
        assert!(
            normalize_account("https://x.snowflakecomputing.com")
                .unwrap_err()
                .to_string()
                .contains("not a URL")
        );
        assert!(normalize_account(&"a".repeat(256)).is_err());
    }

    #[test]
    fn users_uppercase_and_otherwise_stay() {
        assert_eq!(normalize_user("jdoe").unwrap(), "JDOE");
        assert_eq!(
            normalize_user("first.last@example.com").unwrap(),
            "FIRST.LAST@EXAMPLE.COM"
        );
        assert_eq!(normalize_user("straße").unwrap(), "STRASSE");
        assert!(normalize_user("").is_err());
        assert!(normalize_user("  ").is_err());
        assert!(normalize_user("a\nb").is_err());
    }
}
