//! Runs the KMS emulator on its own, for trying the CLI by hand:
//!
//! ```text
//! cargo run -p kms-emulator -- [--region us-east-1] [--seed 1] [SPEC[=ALIAS] ...]
//! ```
//!
//! Each `SPEC` (`RSA_2048`, `ECC_NIST_P256`, ...) creates a `SIGN_VERIFY` key, optionally with
//! an alias. It prints the environment to point the AWS SDK (and `remote-signer`) at it and the
//! keys' ARNs, then serves until interrupted.

use kms_emulator::{ACCESS_KEY_ID, ACCOUNT, Emulator, KeySpec, SECRET_ACCESS_KEY};

fn main() {
    let mut region = "us-east-1".to_string();
    let mut seed = 1u64;
    let mut specs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--region" => {
                region = args
                    .next()
                    .unwrap_or_else(|| usage("--region needs a value"))
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage("--seed needs a number"))
            }
            "-h" | "--help" => usage(""),
            spec => specs.push(spec.to_string()),
        }
    }
    let emulator = Emulator::start(seed);
    println!("export AWS_ENDPOINT_URL_KMS={}", emulator.endpoint());
    println!("export AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}");
    println!("export AWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY}");
    println!("export AWS_REGION={region}");
    println!("export AWS_EC2_METADATA_DISABLED=true");
    for spec in specs {
        let (name, alias) = match spec.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (spec.as_str(), None),
        };
        let parsed = KeySpec::parse(name).unwrap_or_else(|| usage("unknown key spec"));
        let arn = emulator.create_key(&region, parsed, "SIGN_VERIFY");
        println!("# {name}: {arn}");
        if let Some(alias) = alias {
            let alias = format!("alias/{alias}");
            emulator.set_alias(&region, &alias, &arn);
            println!("# {name}: arn:aws:kms:{region}:{ACCOUNT}:{alias}");
        }
    }
    println!("# serving; press Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}

fn usage(why: &str) -> ! {
    if !why.is_empty() {
        eprintln!("kms-emulator: {why}");
    }
    eprintln!("usage: kms-emulator [--region REGION] [--seed N] [SPEC[=ALIAS] ...]");
    std::process::exit(2)
}
