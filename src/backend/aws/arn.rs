//! KMS key and alias ARNs, as the AWS console shows them.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// What an ARN names: a key by its id, or an alias by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArnResource {
    /// `key/<key-id>`: a key id (a UUID, or `mrk-` and 32 hex digits for a multi-Region key).
    Key(String),
    /// `alias/<name>`: resolved once, at open, to the key it points at.
    Alias(String),
}

/// A parsed KMS ARN: `arn:<partition>:kms:<region>:<account>:key/<key-id>` or
/// `arn:<partition>:kms:<region>:<account>:alias/<name>`, in the `aws`, `aws-cn` and
/// `aws-us-gov` partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsArn {
    partition: String,
    region: String,
    account: String,
    resource: ArnResource,
}

const EXPECTED: &str = "expected arn:aws:kms:<region>:<account>:key/<key-id> or \
                        arn:aws:kms:<region>:<account>:alias/<name>";

impl KmsArn {
    /// Parses a key or alias ARN.
    ///
    /// # Errors
    /// [`ErrorKind::KeyRef`] naming what is wrong: not a KMS ARN, an unknown partition, a region
    /// outside its partition, an account that is not 12 digits, a malformed key id or alias.
    pub fn parse(arn: &str) -> Result<Self> {
        let bad = |why: &str| Error::with_context(ErrorKind::KeyRef, why.to_string());
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(res)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad(EXPECTED));
        };
        if service != "kms" {
            return Err(bad("not a KMS ARN (the service must be kms)"));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-');
        if !region_ok {
            return Err(bad("the ARN's region is malformed (e.g. us-east-1)"));
        }
        let in_partition = match partition {
            "aws" => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
            "aws-cn" => region.starts_with("cn-"),
            "aws-us-gov" => region.starts_with("us-gov-"),
            _ => return Err(bad("unknown partition (aws, aws-cn or aws-us-gov)")),
        };
        if !in_partition {
            return Err(bad("the ARN's region is not in its partition"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the ARN's account is not 12 digits"));
        }
        let resource = if let Some(id) = res.strip_prefix("key/") {
            if !valid_key_id(id) {
                return Err(bad(
                    "the key id is not a UUID (or mrk- and 32 hex digits for a multi-Region key)",
                ));
            }
            ArnResource::Key(id.to_string())
        } else if let Some(name) = res.strip_prefix("alias/") {
            let valid = !name.is_empty()
                && name.len() <= 250
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'));
            if !valid {
                return Err(bad(
                    "alias names are 1 to 250 letters, digits, '/', '_' and '-'",
                ));
            }
            ArnResource::Alias(name.to_string())
        } else {
            return Err(bad(EXPECTED));
        };
        Ok(KmsArn {
            partition: partition.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource,
        })
    }

    /// The partition: `aws`, `aws-cn` or `aws-us-gov`.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The region, which the signer's requests go to whatever the environment says.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The 12-digit account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The key or alias the ARN names.
    pub fn resource(&self) -> &ArnResource {
        &self.resource
    }

    /// Whether this names an alias.
    pub fn is_alias(&self) -> bool {
        matches!(self.resource, ArnResource::Alias(_))
    }

    /// The ARN of the key `key_id` in the same partition, region and account.
    pub(super) fn with_key(&self, key_id: &str) -> KmsArn {
        KmsArn {
            resource: ArnResource::Key(key_id.to_string()),
            ..self.clone()
        }
    }
}

fn valid_key_id(id: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = id.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && hex(g))
}

impl fmt::Display for KmsArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kms:{}:{}:",
            self.partition, self.region, self.account
        )?;
        match &self.resource {
            ArnResource::Key(id) => write!(f, "key/{id}"),
            ArnResource::Alias(name) => write!(f, "alias/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn parses_key_and_alias_arns_in_every_partition() {
        for (partition, region) in [
            ("aws", "us-east-2"),
            ("aws-cn", "cn-north-1"),
            ("aws-us-gov", "us-gov-west-1"),
        ] {
            let text = format!("arn:{partition}:kms:{region}:111122223333:key/{ID}");
            let arn = KmsArn::parse(&text).unwrap();
            assert_eq!(
                (arn.partition(), arn.region(), arn.account()),
                (partition, region, "111122223333")
            );
            assert_eq!(arn.resource(), &ArnResource::Key(ID.into()));
            assert_eq!(arn.to_string(), text);
            let alias = format!("arn:{partition}:kms:{region}:111122223333:alias/team/signing_1");
            let arn = KmsArn::parse(&alias).unwrap();
            assert!(arn.is_alias());
            assert_eq!(arn.to_string(), alias);
            assert_eq!(
                arn.with_key(ID).to_string(),
                format!("arn:{partition}:kms:{region}:111122223333:key/{ID}")
            );
        }
        let mrk = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        assert!(KmsArn::parse(mrk).is_ok());
    }

    #[test]
    fn refuses_malformed_arns() {
        for bad in [
            "",
            "arn:aws:kms:us-east-1:111122223333",
            "arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-iso:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-cn:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:US-EAST-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:key/not-a-uuid",
            "arn:aws:kms:us-east-1:111122223333:key/mrk-12",
            "arn:aws:kms:us-east-1:111122223333:alias/",
            "arn:aws:kms:us-east-1:111122223333:alias/with space",
            "arn:aws:kms:us-east-1:111122223333:grant/abc",
        ] {
            assert_eq!(
                KmsArn::parse(bad).unwrap_err().kind(),
                ErrorKind::KeyRef,
                "{bad}"
            );
        }
    }
}
