//! RFC 7512 PKCS#11 URIs: which token, which key, which module, where the PIN is.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::backend::safe_text;
use crate::error::{Error, ErrorKind, Result};

/// URIs longer than this are refused before parsing (no real one comes close).
const MAX_URI_LEN: usize = 4096;

/// Characters written as-is in attribute values (RFC 7512 `pk11-pchar` minus what is
/// ambiguous in a shell); everything else is percent-encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b':')
    .remove(b'@')
    .remove(b'+');

/// A PKCS#11 URI naming one private key (RFC 7512):
/// `pkcs11:token=<label>;object=<label>[;id=<%-encoded bytes>]?module-path=<path>&pin-source=file:<path>`.
///
/// Path attributes `token`, `serial`, `manufacturer` and `model` select the token; `object`
/// (the key's `CKA_LABEL`) and `id` (its `CKA_ID`) select the key, and at least one of them is
/// required. `type` may only be `private`. Query attributes: `module-path` (the module to load)
/// and `pin-source` (a file holding the user PIN). A `pin-value` is refused: a PIN written in a
/// URI ends up in logs and shell history.
///
/// Displaying the URI writes it back in a canonical form; it never holds a PIN.
///
/// ```
/// use remote_signer::backend::pkcs11::Pkcs11Uri;
/// let uri: Pkcs11Uri = "pkcs11:token=ci;object=signing;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so"
///     .parse()?;
/// assert_eq!(uri.token(), Some("ci"));
/// assert_eq!(uri.id(), Some(&[1u8, 2][..]));
/// # Ok::<(), remote_signer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkcs11Uri {
    token: Option<String>,
    serial: Option<String>,
    manufacturer: Option<String>,
    model: Option<String>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    module_path: Option<PathBuf>,
    pin_source: Option<PathBuf>,
}

fn bad(why: impl Into<String>) -> Error {
    Error::with_context(ErrorKind::KeyRef, why.into())
}

fn decode(name: &str, value: &str) -> Result<Vec<u8>> {
    // Refuse malformed escapes rather than pass them through, as the decoder would.
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() >= i + 3
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(bad(format!(
                    "PKCS#11 URI: bad %-escape in `{}`",
                    safe_text(name, 32)
                )));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(percent_decode_str(value).collect())
}

fn decode_text(name: &str, value: &str) -> Result<String> {
    String::from_utf8(decode(name, value)?).map_err(|_| {
        bad(format!(
            "PKCS#11 URI: `{}` is not UTF-8",
            safe_text(name, 32)
        ))
    })
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<()> {
    if slot.replace(value).is_some() {
        return Err(bad(format!(
            "PKCS#11 URI: `{}` is given twice",
            safe_text(name, 32)
        )));
    }
    Ok(())
}

/// `file:` URI or plain path of a PIN file.
fn pin_file(value: &str) -> Result<PathBuf> {
    let path = match value.strip_prefix("file:") {
        Some(rest) => match rest.strip_prefix("//") {
            Some(authority_path) => {
                let slash = authority_path
                    .find('/')
                    .ok_or_else(|| bad("PKCS#11 URI: pin-source file: URI without a path"))?;
                let host = &authority_path[..slash];
                if !host.is_empty() && host != "localhost" {
                    return Err(bad("PKCS#11 URI: pin-source names a remote host"));
                }
                &authority_path[slash..]
            }
            None => rest,
        },
        None if value.starts_with('|') => {
            return Err(bad(
                "PKCS#11 URI: pin-source must be a file (file:PATH), not a command",
            ));
        }
        None => value,
    };
    if path.is_empty() {
        return Err(bad("PKCS#11 URI: pin-source without a path"));
    }
    Ok(PathBuf::from(path))
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI.
    ///
    /// # Errors
    /// [`ErrorKind::KeyRef`] for anything that is not a PKCS#11 URI naming a private key: an
    /// unknown or repeated attribute, a malformed %-escape, no `object` and no `id`, a `type`
    /// other than `private`, or a `pin-value` (the error names `pin-source` and
    /// `REMOTE_SIGNER_PKCS11_PIN` instead).
    pub fn parse(uri: &str) -> Result<Self> {
        if uri.len() > MAX_URI_LEN {
            return Err(bad("PKCS#11 URI is too long"));
        }
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("a PKCS#11 URI starts with `pkcs11:`"))?;
        if rest.contains('#') {
            return Err(bad("PKCS#11 URI must not have a fragment"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        // Before anything else, so no other error can quote a part of a URI holding a PIN.
        let has_pin = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .any(|attr| attr.split_once('=').map_or(attr, |(name, _)| name) == "pin-value");
        if has_pin {
            return Err(bad(
                "PKCS#11 URI: pin-value is refused, since a PIN in a URI ends up in logs and \
                 shell history; put the PIN in a private file named by pin-source=file:PATH, \
                 or in REMOTE_SIGNER_PKCS11_PIN",
            ));
        }
        let mut out = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr.split_once('=').ok_or_else(|| {
                bad(format!(
                    "PKCS#11 URI: `{}` has no value (name=value)",
                    safe_text(attr, 32)
                ))
            })?;
            match name {
                "token" => set(&mut out.token, name, decode_text(name, value)?)?,
                "serial" => set(&mut out.serial, name, decode_text(name, value)?)?,
                "manufacturer" => set(&mut out.manufacturer, name, decode_text(name, value)?)?,
                "model" => set(&mut out.model, name, decode_text(name, value)?)?,
                "object" => set(&mut out.object, name, decode_text(name, value)?)?,
                "id" => set(&mut out.id, name, decode(name, value)?)?,
                "type" => {
                    if value != "private" {
                        return Err(bad("PKCS#11 URI: only type=private names a signing key"));
                    }
                }
                _ if name.starts_with("x-") => {}
                _ => {
                    return Err(bad(format!(
                        "PKCS#11 URI: path attribute `{}` is not supported (use token, \
                         serial, manufacturer, model, object, id, type)",
                        safe_text(name, 32)
                    )));
                }
            }
        }
        for attr in query.into_iter().flat_map(|q| q.split('&')) {
            if attr.is_empty() {
                continue;
            }
            let (name, value) = attr.split_once('=').unwrap_or((attr, ""));
            match name {
                "module-path" => {
                    let path = decode_text(name, value)?;
                    if path.is_empty() {
                        return Err(bad("PKCS#11 URI: module-path is empty"));
                    }
                    set(&mut out.module_path, name, PathBuf::from(path))?
                }
                "pin-source" => {
                    let source = pin_file(&decode_text(name, value)?)?;
                    set(&mut out.pin_source, name, source)?
                }
                _ if name.starts_with("x-") => {}
                _ => {
                    return Err(bad(format!(
                        "PKCS#11 URI: query attribute `{}` is not supported (use module-path, \
                         pin-source)",
                        safe_text(name, 32)
                    )));
                }
            }
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(bad(
                "PKCS#11 URI names no key: give object=<label> or id=<%-encoded id>",
            ));
        }
        Ok(out)
    }

    /// A URI naming the key with this `CKA_LABEL` and `CKA_ID` on the token with this label.
    pub fn new(token: &str, object: &str, id: &[u8]) -> Self {
        Pkcs11Uri {
            token: Some(token.to_string()),
            object: Some(object.to_string()),
            id: Some(id.to_vec()),
            ..Pkcs11Uri::default()
        }
    }

    /// The same URI with this `module-path`.
    #[must_use]
    pub fn with_module_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.module_path = Some(path.into());
        self
    }

    /// The token label (`token=`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The token serial number (`serial=`).
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }

    /// The token manufacturer (`manufacturer=`).
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// The token model (`model=`).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The key's label, `CKA_LABEL` (`object=`).
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The key's `CKA_ID` (`id=`).
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The module to load (`module-path=`).
    pub fn module_path(&self) -> Option<&Path> {
        self.module_path.as_deref()
    }

    /// The file holding the user PIN (`pin-source=`).
    pub fn pin_source(&self) -> Option<&Path> {
        self.pin_source.as_deref()
    }

    /// The path part only (token and key, no module or PIN file): names the key in ids and
    /// error texts.
    pub fn key_part(&self) -> String {
        let mut out = String::from("pkcs11:");
        let mut sep = "";
        let mut push = |name: &str, value: &[u8]| {
            out.push_str(sep);
            out.push_str(name);
            out.push('=');
            if name == "id" {
                for b in value {
                    out.push_str(&format!("%{b:02x}"));
                }
            } else {
                let text = String::from_utf8_lossy(value);
                out.extend(utf8_percent_encode(&text, VALUE));
            }
            sep = ";";
        };
        for (name, value) in [
            ("token", &self.token),
            ("serial", &self.serial),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("object", &self.object),
        ] {
            if let Some(v) = value {
                push(name, v.as_bytes());
            }
        }
        if let Some(id) = &self.id {
            push("id", id);
        }
        out
    }
}

impl FromStr for Pkcs11Uri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Pkcs11Uri::parse(s)
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key_part())?;
        let mut sep = '?';
        for (name, value) in [
            ("module-path", &self.module_path),
            ("pin-source", &self.pin_source),
        ] {
            if let Some(path) = value {
                let text = path.to_string_lossy();
                let text = if name == "pin-source" {
                    // `file://` before an absolute path, so one starting `//` is not a host.
                    let authority = if text.starts_with('/') { "//" } else { "" };
                    format!("file:{authority}{text}")
                } else {
                    text.into_owned()
                };
                write!(f, "{sep}{name}={}", utf8_percent_encode(&text, VALUE))?;
                sep = '&';
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=sign;id=%a0%0B;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token(), Some("My Token"));
        assert_eq!(uri.object(), Some("sign"));
        assert_eq!(uri.id(), Some(&[0xa0, 0x0b][..]));
        assert_eq!(
            uri.module_path(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(uri.pin_source(), Some(Path::new("/run/pin")));
        let again = Pkcs11Uri::parse(&uri.to_string()).unwrap();
        assert_eq!(again, uri);
        for tricky in [
            "pkcs11:id=?pin-source=//host/pin",
            "pkcs11:object=;token=a%3Bb%3Fc?module-path=a=b&pin-source=file:file:x",
        ] {
            let uri = Pkcs11Uri::parse(tricky).unwrap();
            assert_eq!(Pkcs11Uri::parse(&uri.to_string()).unwrap(), uri, "{tricky}");
        }
        assert_eq!(
            uri.key_part(),
            "pkcs11:token=My%20Token;object=sign;id=%a0%0b"
        );
        for (source, path) in [
            ("file:///run/pin", "/run/pin"),
            ("file://localhost/run/pin", "/run/pin"),
            ("pin.txt", "pin.txt"),
        ] {
            let uri = Pkcs11Uri::parse(&format!("pkcs11:id=%01?pin-source={source}")).unwrap();
            assert_eq!(uri.pin_source(), Some(Path::new(path)));
        }
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (uri, says) in [
            ("pkcs11:token=t", "names no key"),
            ("file:k.pem", "starts with `pkcs11:`"),
            ("pkcs11:object=a;object=b", "given twice"),
            ("pkcs11:object=a;type=cert", "type=private"),
            ("pkcs11:object=a;slot-id=3", "`slot-id` is not supported"),
            ("pkcs11:object=%zz", "bad %-escape"),
            ("pkcs11:object=%f", "bad %-escape"),
            ("pkcs11:object=%ff", "not UTF-8"),
            ("pkcs11:object", "has no value"),
            (
                "pkcs11:object=a?module-name=softhsm2",
                "`module-name` is not supported",
            ),
            ("pkcs11:object=a?pin-source=|cat%20pin", "not a command"),
            ("pkcs11:object=a?pin-source=file://host/pin", "remote host"),
            ("pkcs11:object=a#frag", "fragment"),
        ] {
            let err = Pkcs11Uri::parse(uri).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyRef, "{uri}");
            assert!(err.to_string().contains(says), "{uri}: {err}");
        }
    }

    #[test]
    fn a_pin_in_the_uri_is_refused_without_echoing_it() {
        for uri in [
            "pkcs11:object=a?pin-value=86239571",
            "pkcs11:86239571;object=a?module-path=/m.so&pin-value=86239571",
        ] {
            let text = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(!text.contains("86239571"), "{text}");
            assert!(text.contains("pin-source=file:PATH"), "{text}");
            assert!(text.contains("REMOTE_SIGNER_PKCS11_PIN"), "{text}");
        }
    }

    #[test]
    fn vendor_attributes_are_ignored_and_long_input_refused() {
        assert!(Pkcs11Uri::parse("pkcs11:object=a;x-vendor=1?x-q=2").is_ok());
        let long = format!("pkcs11:object={}", "a".repeat(MAX_URI_LEN));
        assert!(Pkcs11Uri::parse(&long).is_err());
    }
}
