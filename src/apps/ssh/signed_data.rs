//! What the agent agrees to sign: only the two things SSH clients sign, so the agent is no
//! signing oracle for other protocols that use the same key (JWS, certificates, Snowflake JWTs).
//!
//! | Data                          | Layout (SSH wire format)                                        |
//! |-------------------------------|-----------------------------------------------------------------|
//! | user-authentication request   | `string session_id, byte 50, string user, string "ssh-connection", string method, boolean TRUE, string algorithm, string key_blob` (RFC 4252 section 7) |
//! | ... hostbound (OpenSSH 8.9+)  | method `publickey-hostbound-v00@openssh.com`, then `string host_key` |
//! | SSHSIG signed data            | `byte[6] "SSHSIG", string namespace, string reserved, string hash_algorithm, string H(message)` (OpenSSH `PROTOCOL.sshsig`) |
//!
//! The key blob of a user-authentication request must be the key (or certificate) the sign
//! request names, the algorithm must be one of that key's, and no byte may follow the last
//! field. The layouts are those OpenSSH's own agent checks (`parse_userauth_request` and
//! `parse_sshsig_request` in `ssh-agent.c`), a little stricter: SSHSIG hashes must be
//! `sha256` or `sha512` of their length, and the namespace must not be empty.
//!
//! A JWS signing input (`base64url.base64url`) starts with `ey`, read as a session id length
//! of over a gigabyte, and an OpenSSH certificate's signed part starts with its key type name
//! followed by a nonce length, never the byte 50: neither parses as either form.

use ssh_encoding::Decode;

use super::protocol::{certified_key_blob, read_string};

/// `SSH_MSG_USERAUTH_REQUEST` (RFC 4252).
const USERAUTH_REQUEST: u8 = 50;
const SERVICE: &[u8] = b"ssh-connection";
const PUBLICKEY: &[u8] = b"publickey";
const PUBLICKEY_HOSTBOUND: &[u8] = b"publickey-hostbound-v00@openssh.com";
const SSHSIG_MAGIC: &[u8] = b"SSHSIG";

/// What a sign request's data was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignedData {
    /// An SSH user-authentication request (`publickey`, or hostbound when `hostbound`).
    UserAuth { hostbound: bool },
    /// An SSHSIG blob (`ssh-keygen -Y sign`, git).
    Sshsig,
}

impl std::fmt::Display for SignedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignedData::UserAuth { hostbound: false } => "a user-authentication request",
            SignedData::UserAuth { hostbound: true } => "a hostbound user-authentication request",
            SignedData::Sshsig => "an SSHSIG blob",
        })
    }
}

/// Why data was refused. Names the reason, never the data: it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Neither a user-authentication request nor an SSHSIG blob.
    NotSsh,
    /// A user-authentication request for a service other than `ssh-connection`.
    Service,
    /// A user-authentication method other than `publickey` and the hostbound one.
    Method,
    /// A `publickey` request without the signature flag set to TRUE.
    NoSignatureFlag,
    /// A user-authentication request whose key blob is not the key signing.
    OtherKey,
    /// A user-authentication request whose algorithm does not belong to the key signing.
    Algorithm,
    /// A hostbound request whose host key is no SSH public key.
    HostKey,
    /// An SSHSIG blob without a namespace.
    Namespace,
    /// An SSHSIG hash other than `sha256`/`sha512`, or of the wrong length.
    Hash,
    /// A field is cut short.
    Truncated,
    /// Bytes follow the last field.
    TrailingData,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::NotSsh => {
                "the data is neither an SSH user-authentication request nor an SSHSIG blob"
            }
            Refused::Service => {
                "user-authentication request for a service other than ssh-connection"
            }
            Refused::Method => "user-authentication method other than publickey",
            Refused::NoSignatureFlag => "user-authentication request without the signature flag",
            Refused::OtherKey => "user-authentication request for another key",
            Refused::Algorithm => {
                "user-authentication request names an algorithm of another key type"
            }
            Refused::HostKey => "hostbound user-authentication request with a malformed host key",
            Refused::Namespace => "SSHSIG blob without a namespace",
            Refused::Hash => "SSHSIG blob with a hash other than sha256 or sha512",
            Refused::Truncated => "truncated user-authentication request or SSHSIG blob",
            Refused::TrailingData => {
                "trailing bytes after a user-authentication request or SSHSIG blob"
            }
        })
    }
}

/// Recognises `data`, which the key (or certificate) `key_blob` is asked to sign.
///
/// # Errors
/// [`Refused`] with the reason when `data` is not what an SSH client signs with that key.
pub(crate) fn check(data: &[u8], key_blob: &[u8]) -> Result<SignedData, Refused> {
    if let Some(rest) = data.strip_prefix(SSHSIG_MAGIC) {
        return check_sshsig(rest);
    }
    check_userauth(data, key_blob)
}

fn check_userauth(mut data: &[u8], key_blob: &[u8]) -> Result<SignedData, Refused> {
    let body = &mut data;
    // A session id is a hash; anything that does not even frame as one is foreign data.
    let session_id = read_string(body).map_err(|_| Refused::NotSsh)?;
    if session_id.is_empty() || u8::decode(body).ok() != Some(USERAUTH_REQUEST) {
        return Err(Refused::NotSsh);
    }
    let user = read_string(body).map_err(|_| Refused::Truncated)?;
    if std::str::from_utf8(user).is_err() {
        return Err(Refused::NotSsh);
    }
    if read_string(body).map_err(|_| Refused::Truncated)? != SERVICE {
        return Err(Refused::Service);
    }
    let hostbound = match read_string(body).map_err(|_| Refused::Truncated)? {
        PUBLICKEY => false,
        PUBLICKEY_HOSTBOUND => true,
        _ => return Err(Refused::Method),
    };
    if u8::decode(body).map_err(|_| Refused::Truncated)? != 1 {
        return Err(Refused::NoSignatureFlag);
    }
    let algorithm = read_string(body).map_err(|_| Refused::Truncated)?;
    let offered = read_string(body).map_err(|_| Refused::Truncated)?;
    if !same_key(offered, key_blob) {
        return Err(Refused::OtherKey);
    }
    if !algorithm_fits(algorithm, offered) {
        return Err(Refused::Algorithm);
    }
    if hostbound {
        let mut host_key = read_string(body).map_err(|_| Refused::Truncated)?;
        let parsed = ssh_key::public::KeyData::decode(&mut host_key);
        if parsed.is_err() || !host_key.is_empty() {
            return Err(Refused::HostKey);
        }
    }
    if !body.is_empty() {
        return Err(Refused::TrailingData);
    }
    Ok(SignedData::UserAuth { hostbound })
}

/// Whether the key blob a login offers is the one asked to sign, or a certificate of it (`ssh`
/// asks the plain key in the agent to sign for a certificate from a `CertificateFile`), or the
/// other way round.
fn same_key(offered: &[u8], signing: &[u8]) -> bool {
    let plain = |blob: &[u8]| certified_key_blob(blob).unwrap_or_else(|| blob.to_vec());
    offered == signing || plain(offered) == plain(signing)
}

/// Whether `algorithm` signs with the key type that `key_blob` starts with. RSA keys sign
/// under three names (`ssh-rsa`, `rsa-sha2-256`, `rsa-sha2-512`, and their certificate forms).
fn algorithm_fits(algorithm: &[u8], mut key_blob: &[u8]) -> bool {
    let Ok(key_type) = read_string(&mut key_blob) else {
        return false;
    };
    if algorithm == key_type {
        return true;
    }
    const RSA: [&[u8]; 2] = [b"rsa-sha2-256", b"rsa-sha2-512"];
    const RSA_CERT: [&[u8]; 2] = [
        b"rsa-sha2-256-cert-v01@openssh.com",
        b"rsa-sha2-512-cert-v01@openssh.com",
    ];
    match key_type {
        b"ssh-rsa" => RSA.contains(&algorithm),
        b"ssh-rsa-cert-v01@openssh.com" => RSA_CERT.contains(&algorithm),
        _ => false,
    }
}

fn check_sshsig(mut data: &[u8]) -> Result<SignedData, Refused> {
    let body = &mut data;
    let namespace = read_string(body).map_err(|_| Refused::Truncated)?;
    let _reserved = read_string(body).map_err(|_| Refused::Truncated)?;
    let hash_algorithm = read_string(body).map_err(|_| Refused::Truncated)?;
    let hash = read_string(body).map_err(|_| Refused::Truncated)?;
    if namespace.is_empty() || std::str::from_utf8(namespace).is_err() {
        return Err(Refused::Namespace);
    }
    let hash_len = match hash_algorithm {
        b"sha256" => 32,
        b"sha512" => 64,
        _ => return Err(Refused::Hash),
    };
    if hash.len() != hash_len {
        return Err(Refused::Hash);
    }
    if !body.is_empty() {
        return Err(Refused::TrailingData);
    }
    Ok(SignedData::Sshsig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_encoding::Encode;

    fn ed25519_blob() -> Vec<u8> {
        let mut blob = Vec::new();
        ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([7; 32]))
            .encode(&mut blob)
            .unwrap();
        blob
    }

    fn userauth(method: &[u8], algorithm: &[u8], key_blob: &[u8], host_key: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        [9u8; 32].as_slice().encode(&mut data).unwrap();
        data.push(USERAUTH_REQUEST);
        b"alice".as_slice().encode(&mut data).unwrap();
        SERVICE.encode(&mut data).unwrap();
        method.encode(&mut data).unwrap();
        data.push(1);
        algorithm.encode(&mut data).unwrap();
        key_blob.encode(&mut data).unwrap();
        if method == PUBLICKEY_HOSTBOUND {
            host_key.encode(&mut data).unwrap();
        }
        data
    }

    fn sshsig(hash_algorithm: &[u8], hash_len: usize) -> Vec<u8> {
        let mut data = SSHSIG_MAGIC.to_vec();
        b"git".as_slice().encode(&mut data).unwrap();
        b"".as_slice().encode(&mut data).unwrap();
        hash_algorithm.encode(&mut data).unwrap();
        vec![3u8; hash_len].encode(&mut data).unwrap();
        data
    }

    #[test]
    fn accepts_what_ssh_clients_sign() {
        let key = ed25519_blob();
        let plain = userauth(PUBLICKEY, b"ssh-ed25519", &key, b"");
        assert_eq!(
            check(&plain, &key),
            Ok(SignedData::UserAuth { hostbound: false })
        );
        let hostbound = userauth(PUBLICKEY_HOSTBOUND, b"ssh-ed25519", &key, &ed25519_blob());
        assert_eq!(
            check(&hostbound, &key),
            Ok(SignedData::UserAuth { hostbound: true })
        );
        assert_eq!(check(&sshsig(b"sha512", 64), &key), Ok(SignedData::Sshsig));
        assert_eq!(check(&sshsig(b"sha256", 32), &key), Ok(SignedData::Sshsig));
    }

    #[test]
    fn rsa_keys_sign_under_the_sha2_names() {
        let mut rsa = Vec::new();
        b"ssh-rsa".as_slice().encode(&mut rsa).unwrap();
        rsa.extend_from_slice(&[0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
        for algorithm in [&b"rsa-sha2-256"[..], b"rsa-sha2-512", b"ssh-rsa"] {
            assert!(check(&userauth(PUBLICKEY, algorithm, &rsa, b""), &rsa).is_ok());
        }
        let wrong = userauth(PUBLICKEY, b"ssh-ed25519", &rsa, b"");
        assert_eq!(check(&wrong, &rsa), Err(Refused::Algorithm));
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let key = ed25519_blob();
        let cases: Vec<(Vec<u8>, Refused)> = vec![
            (
                b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0".to_vec(),
                Refused::NotSsh,
            ),
            (Vec::new(), Refused::NotSsh),
            (
                userauth(b"password", b"ssh-ed25519", &key, b""),
                Refused::Method,
            ),
            (
                userauth(PUBLICKEY, b"ssh-ed25519", &ed25519_blob()[..50], b""),
                Refused::OtherKey,
            ),
            (
                userauth(PUBLICKEY, b"ecdsa-sha2-nistp256", &key, b""),
                Refused::Algorithm,
            ),
            (
                userauth(PUBLICKEY_HOSTBOUND, b"ssh-ed25519", &key, b"junk"),
                Refused::HostKey,
            ),
            (sshsig(b"sha1", 20), Refused::Hash),
            (sshsig(b"sha256", 64), Refused::Hash),
        ];
        for (data, reason) in cases {
            assert_eq!(check(&data, &key), Err(reason));
        }
        let mut service = userauth(PUBLICKEY, b"ssh-ed25519", &key, b"");
        let at = service
            .windows(SERVICE.len())
            .position(|w| w == SERVICE)
            .unwrap();
        service[at] = b'x';
        assert_eq!(check(&service, &key), Err(Refused::Service));
        let mut unflagged = userauth(PUBLICKEY, b"ssh-ed25519", &key, b"");
        let flag = 4 + 32 + 1 + 9 + 4 + SERVICE.len() + 4 + PUBLICKEY.len();
        unflagged[flag] = 0;
        assert_eq!(check(&unflagged, &key), Err(Refused::NoSignatureFlag));
        for mut valid in [
            userauth(PUBLICKEY, b"ssh-ed25519", &key, b""),
            sshsig(b"sha512", 64),
        ] {
            valid.push(0);
            assert_eq!(check(&valid, &key), Err(Refused::TrailingData));
            valid.truncate(valid.len() - 2);
            assert!(check(&valid, &key).is_err());
        }
    }
}
