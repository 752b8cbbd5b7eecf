//! A fresh SoftHSM2 token for one test process: its own token directory and config
//! (`SOFTHSM2_CONF`), initialised with `softhsm2-util --init-token --free`, keys imported with
//! SoftHSM's own tool. Independent of the crate, so the crate is tested against a token it
//! did not set up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

/// Debian's SoftHSM2 module (package `softhsm2`).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The token label.
pub const TOKEN: &str = "remote-signer-test";
/// The user PIN: distinctive, so a test can search output and errors for it.
pub const PIN: &str = "86239571";
const SO_PIN: &str = "55512345";

/// The token and the files around it.
pub struct SoftHsm {
    dir: TempDir,
}

/// The process's token, created on first use. Sets `SOFTHSM2_CONF` before any module loads.
pub fn token() -> &'static SoftHsm {
    static TOKEN_DIR: OnceLock<SoftHsm> = OnceLock::new();
    TOKEN_DIR.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing: install softhsm2 (scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // SAFETY: changing the environment is unsound only while another thread reads it
        // without std's lock (C code calling `getenv`). SoftHSM reads `SOFTHSM2_CONF` that
        // way when it is initialised, which every user of the module does after `token()`
        // has returned. Other tests of the binary may be running meanwhile: a risk a test
        // process takes because SoftHSM takes its config from the environment only.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        let hsm = SoftHsm { dir };
        hsm.util(&[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ]);
        let pin = hsm.pin_file();
        std::fs::write(&pin, format!("{PIN}\n")).unwrap();
        chmod(&pin, 0o600);
        hsm
    })
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl SoftHsm {
    /// A scratch directory that lives as long as the token.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `SOFTHSM2_CONF` file.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// A private file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// `pkcs11:token=...;<path>?module-path=...` (no PIN).
    pub fn uri(&self, path: &str) -> String {
        format!("pkcs11:token={TOKEN};{path}?module-path={MODULE}")
    }

    /// Runs `softhsm2-util` with `args` and asserts it succeeded.
    pub fn util(&self, args: &[&str]) -> String {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", self.conf())
            .args(args)
            .output()
            .expect("run softhsm2-util (install softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Generates a key with openssl (`openssl genpkey` arguments), imports it with
    /// `softhsm2-util --import` under `label` and `id` (hex), and returns the PEM public key.
    pub fn import(&self, genpkey: &[&str], label: &str, id_hex: &str) -> String {
        let key = self.dir.path().join(format!("{label}.pem"));
        openssl(&[&["genpkey"], genpkey, &["-out", key.to_str().unwrap()]].concat());
        let public = self.import_pkcs8(&key, label, id_hex);
        std::fs::remove_file(&key).unwrap();
        public
    }

    /// Imports the PKCS#8 private key file `key` with `softhsm2-util --import` under `label`
    /// and `id` (hex), and returns the PEM public key as openssl derives it.
    pub fn import_pkcs8(&self, key: &Path, label: &str, id_hex: &str) -> String {
        self.util(&[
            "--import",
            key.to_str().unwrap(),
            "--token",
            TOKEN,
            "--label",
            label,
            "--id",
            id_hex,
            "--pin",
            PIN,
        ]);
        let public = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
        String::from_utf8(public).unwrap()
    }

    /// `pkcs11-tool --list-objects` (from opensc), logged in.
    pub fn list_objects(&self) -> String {
        let out = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", self.conf())
            .args([
                "--module",
                MODULE,
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
            ])
            .arg("--list-objects")
            .output()
            .expect("run pkcs11-tool (install opensc)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Runs openssl with `args`, asserting success; returns stdout.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
