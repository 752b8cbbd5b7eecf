//! A local Azure Key Vault emulator, for trying the CLI and the library without Azure.
//!
//! ```text
//! cargo run -p keyvault-emulator -- [--port 8443] [--import NAME=KEY.pem]...
//! ```
//!
//! It serves HTTPS on 127.0.0.1 with a CA of its own, creates the keys `rsa` (RSA 2048),
//! `ec256`, `ec384` and `ec256k`, imports any `--import`ed PEM private keys, and prints the
//! environment to use it:
//!
//! ```text
//! # in another shell, after copying the `export` lines it printed:
//! remote-signer public-key --key https://127.0.0.1:8443/keys/rsa --no-verify-challenge-resource
//! ```
//!
//! The emulator is the one the integration tests use (this crate's library). It runs until
//! interrupted.

use crate::{Emulator, KeySpec};

/// Runs the emulator with the command-line arguments of this process, printing the `export`
/// lines to use it, until the process is interrupted. Bad arguments print the usage and exit 2.
pub fn main() -> ! {
    let mut port = 0u16;
    let mut imports = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage("--port needs a number"))
            }
            "--import" => {
                let spec = args
                    .next()
                    .unwrap_or_else(|| usage("--import needs NAME=FILE"));
                let (name, file) = spec
                    .split_once('=')
                    .unwrap_or_else(|| usage("--import needs NAME=FILE"));
                imports.push((name.to_string(), file.to_string()));
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }

    let emu = Emulator::start_on(port);
    for (name, file) in &imports {
        let pem = std::fs::read_to_string(file)
            .unwrap_or_else(|e| usage(&format!("cannot read {file}: {e}")));
        emu.import_pem(name, &pem);
    }
    for (name, spec) in [
        ("rsa", KeySpec::Rsa(2048)),
        ("ec256", KeySpec::P256),
        ("ec384", KeySpec::P384),
        ("ec256k", KeySpec::P256K),
    ] {
        emu.create_key(name, spec);
    }
    // The CA file lives in the emulator's temporary directory, as long as this process.
    for (key, value) in emu.env() {
        println!("export {key}='{value}'");
    }
    println!("# keys:");
    let mut names: Vec<&str> = vec!["rsa", "ec256", "ec384", "ec256k"];
    names.extend(imports.iter().map(|(n, _)| n.as_str()));
    for name in names {
        let version = emu.current_version(name).expect("created");
        println!("#   {}", emu.key_url(name, Some(&version)));
    }
    println!(
        "# use: remote-signer public-key --key {} --no-verify-challenge-resource",
        emu.key_url("rsa", None)
    );
    println!("# serving on {} until interrupted", emu.vault_url());
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("keyvault-emulator: {problem}");
    }
    eprintln!("usage: keyvault-emulator [--port PORT] [--import NAME=KEY.pem]...");
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}
