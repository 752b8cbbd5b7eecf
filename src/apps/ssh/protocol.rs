//! The part of the agent protocol (RFC 9987) this agent speaks: the messages, their
//! framing, and strict decoding of untrusted input.
//!
//! Every message is `uint32 length, byte type, contents`. The agent answers
//! `REQUEST_IDENTITIES` and `SIGN_REQUEST`; everything else (adding, removing, locking keys,
//! extensions) is answered with `FAILURE`, because the keys are fixed when the agent starts.

use ssh_encoding::{Decode, Encode};

/// `SSH_AGENT_FAILURE`.
pub(crate) const FAILURE: u8 = 5;
/// `SSH_AGENTC_REQUEST_IDENTITIES`.
pub(crate) const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENT_IDENTITIES_ANSWER`.
pub(crate) const IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENTC_SIGN_REQUEST`.
pub(crate) const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENT_SIGN_RESPONSE`.
pub(crate) const SIGN_RESPONSE: u8 = 14;

/// Sign-request flag: answer an RSA request with `rsa-sha2-256`.
pub(crate) const RSA_SHA2_256: u32 = 0x02;
/// Sign-request flag: answer an RSA request with `rsa-sha2-512`.
pub(crate) const RSA_SHA2_512: u32 = 0x04;

/// A request the agent acts on. Everything else decodes to [`Request::Unsupported`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// List the identities.
    Identities,
    /// Sign `data` with the key whose public blob is `key_blob`.
    Sign {
        key_blob: &'a [u8],
        data: &'a [u8],
        flags: u32,
    },
    /// A message this agent refuses (add/remove/lock/extension/unknown type).
    Unsupported(u8),
}

/// Why a message could not be decoded. Deliberately content-free: it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The message has no type byte.
    Empty,
    /// A field is cut short or a length runs past the end.
    Truncated,
    /// Bytes are left over after the last field.
    TrailingData,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::Empty => "empty message",
            Malformed::Truncated => "truncated field",
            Malformed::TrailingData => "trailing bytes after the last field",
        })
    }
}

impl<'a> Request<'a> {
    /// Decodes one message body (the bytes after the length prefix).
    pub(crate) fn decode(mut body: &'a [u8]) -> Result<Self, Malformed> {
        let kind = u8::decode(&mut body).map_err(|_| Malformed::Empty)?;
        let request = match kind {
            REQUEST_IDENTITIES => Request::Identities,
            SIGN_REQUEST => {
                let key_blob = read_string(&mut body)?;
                let data = read_string(&mut body)?;
                let flags = u32::decode(&mut body).map_err(|_| Malformed::Truncated)?;
                Request::Sign {
                    key_blob,
                    data,
                    flags,
                }
            }
            // The contents of refused messages are never looked at.
            other => return Ok(Request::Unsupported(other)),
        };
        if body.is_empty() {
            Ok(request)
        } else {
            Err(Malformed::TrailingData)
        }
    }
}

/// Reads an SSH `string` without copying, checking its length against what is left first.
pub(crate) fn read_string<'a>(body: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = usize::decode(body).map_err(|_| Malformed::Truncated)?;
    if len > body.len() {
        return Err(Malformed::Truncated);
    }
    let (string, rest) = body.split_at(len);
    *body = rest;
    Ok(string)
}

/// For an OpenSSH certificate blob, the blob of the public key inside it; `None` for anything
/// else. Only the fields up to the key are read, so certificates that never expire (which
/// `ssh-key` cannot parse) or carry unknown extensions work too.
pub(crate) fn certified_key_blob(blob: &[u8]) -> Option<Vec<u8>> {
    use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
    let mut body = blob;
    let name = std::str::from_utf8(read_string(&mut body).ok()?).ok()?;
    let algorithm = ssh_key::Algorithm::new_certificate(name).ok()?;
    let _nonce = read_string(&mut body).ok()?;
    let key = match algorithm {
        ssh_key::Algorithm::Ecdsa { .. } => KeyData::Ecdsa(EcdsaPublicKey::decode(&mut body).ok()?),
        ssh_key::Algorithm::Ed25519 => KeyData::Ed25519(Ed25519PublicKey::decode(&mut body).ok()?),
        ssh_key::Algorithm::Rsa { .. } => KeyData::Rsa(RsaPublicKey::decode(&mut body).ok()?),
        _ => return None,
    };
    let mut key_blob = Vec::new();
    key.encode(&mut key_blob).ok()?;
    Some(key_blob)
}

/// The name of an agent message type (RFC 9987 and OpenSSH's `PROTOCOL.agent`), for logs.
pub(crate) fn message_name(kind: u8) -> &'static str {
    match kind {
        1 => "SSH_AGENTC_REQUEST_RSA_IDENTITIES (protocol 1)",
        3 => "SSH_AGENTC_RSA_CHALLENGE (protocol 1)",
        FAILURE => "SSH_AGENT_FAILURE",
        6 => "SSH_AGENT_SUCCESS",
        7 => "SSH_AGENTC_ADD_RSA_IDENTITY (protocol 1)",
        8 => "SSH_AGENTC_REMOVE_RSA_IDENTITY (protocol 1)",
        9 => "SSH_AGENTC_REMOVE_ALL_RSA_IDENTITIES (protocol 1)",
        REQUEST_IDENTITIES => "SSH_AGENTC_REQUEST_IDENTITIES",
        IDENTITIES_ANSWER => "SSH_AGENT_IDENTITIES_ANSWER",
        SIGN_REQUEST => "SSH_AGENTC_SIGN_REQUEST",
        SIGN_RESPONSE => "SSH_AGENT_SIGN_RESPONSE",
        17 => "SSH_AGENTC_ADD_IDENTITY",
        18 => "SSH_AGENTC_REMOVE_IDENTITY",
        19 => "SSH_AGENTC_REMOVE_ALL_IDENTITIES",
        20 => "SSH_AGENTC_ADD_SMARTCARD_KEY",
        21 => "SSH_AGENTC_REMOVE_SMARTCARD_KEY",
        22 => "SSH_AGENTC_LOCK",
        23 => "SSH_AGENTC_UNLOCK",
        24 => "SSH_AGENTC_ADD_RSA_ID_CONSTRAINED (protocol 1)",
        25 => "SSH_AGENTC_ADD_ID_CONSTRAINED",
        26 => "SSH_AGENTC_ADD_SMARTCARD_KEY_CONSTRAINED",
        27 => "SSH_AGENTC_EXTENSION",
        28 => "SSH_AGENT_EXTENSION_FAILURE",
        29 => "SSH_AGENT_EXTENSION_RESPONSE",
        _ => "an unknown message type",
    }
}

/// The `FAILURE` message body.
pub(crate) fn failure() -> Vec<u8> {
    vec![FAILURE]
}

/// The `IDENTITIES_ANSWER` body for `(key blob, comment)` pairs.
pub(crate) fn identities_answer<'a>(
    identities: impl ExactSizeIterator<Item = (&'a [u8], &'a str)>,
) -> Vec<u8> {
    let mut body = vec![IDENTITIES_ANSWER];
    let encoded = (|| {
        u32::try_from(identities.len())
            .map_err(|_| ssh_encoding::Error::Overflow)?
            .encode(&mut body)?;
        for (blob, comment) in identities {
            blob.encode(&mut body)?;
            comment.encode(&mut body)?;
        }
        Ok::<_, ssh_encoding::Error>(())
    })();
    match encoded {
        Ok(()) => body,
        Err(_) => failure(),
    }
}

/// The `SIGN_RESPONSE` body carrying `signature` (`string algorithm, string blob`, itself
/// wrapped in a `string`).
pub(crate) fn sign_response(signature: &ssh_key::Signature) -> Vec<u8> {
    let mut body = vec![SIGN_RESPONSE];
    match signature.encode_prefixed(&mut body) {
        Ok(()) => body,
        Err(_) => failure(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_request(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut body = vec![SIGN_REQUEST];
        blob.encode(&mut body).unwrap();
        data.encode(&mut body).unwrap();
        flags.encode(&mut body).unwrap();
        body
    }

    #[test]
    fn decodes_the_requests_it_serves() {
        assert_eq!(Request::decode(&[11]), Ok(Request::Identities));
        let body = sign_request(b"blob", b"data", RSA_SHA2_512);
        assert_eq!(
            Request::decode(&body),
            Ok(Request::Sign {
                key_blob: b"blob",
                data: b"data",
                flags: 4
            })
        );
        assert_eq!(Request::decode(&[17, 1, 2]), Ok(Request::Unsupported(17)));
        assert_eq!(Request::decode(&[27]), Ok(Request::Unsupported(27)));
    }

    #[test]
    fn refuses_malformed_requests() {
        assert_eq!(Request::decode(&[]), Err(Malformed::Empty));
        assert_eq!(Request::decode(&[11, 0]), Err(Malformed::TrailingData));
        let body = sign_request(b"blob", b"data", 0);
        for cut in 1..body.len() {
            assert_eq!(
                Request::decode(&body[..cut]),
                Err(Malformed::Truncated),
                "{cut}"
            );
        }
        let mut long = body.clone();
        long.push(0);
        assert_eq!(Request::decode(&long), Err(Malformed::TrailingData));
        // A length far past the end is refused before anything is allocated.
        assert_eq!(
            Request::decode(&[13, 0xff, 0xff, 0xff, 0xff]),
            Err(Malformed::Truncated)
        );
    }

    #[test]
    fn names_message_types() {
        assert_eq!(message_name(17), "SSH_AGENTC_ADD_IDENTITY");
        assert_eq!(message_name(27), "SSH_AGENTC_EXTENSION");
        assert_eq!(message_name(200), "an unknown message type");
    }

    #[test]
    fn encodes_answers() {
        assert_eq!(failure(), [5]);
        let answer = identities_answer([(&b"k"[..], "c")].into_iter());
        assert_eq!(answer, [12, 0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'c']);
    }
}
