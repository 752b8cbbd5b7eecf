//! What the SQL API token cache saves per request: a cached bearer token against the baseline of
//! signing a fresh token, measured in the same run with the vectors' local RSA-2048 key. (A Key
//! Vault signature costs a network round trip and a fee on top of the local figure.)
//!
//! `cargo bench --bench snowflake` prints both times and their ratio.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use remote_signer::RemoteSigner;
use remote_signer::backend::local::LocalSigner;
use remote_signer::snowflake::{KeyPairAuth, LOGIN_LIFETIME, SqlApiTokens};

const GROUP: &str = "snowflake_token";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key = include_bytes!("../tests/data/snowflake/rsa_key.p8");
    let signer: Arc<dyn RemoteSigner> =
        Arc::new(LocalSigner::from_bytes(key, None).expect("test key"));
    let auth = KeyPairAuth::new(signer, "myorg-myaccount", "jdoe").expect("auth");
    let tokens = SqlApiTokens::new(auth.clone());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    runtime
        .block_on(tokens.bearer_token_at(now))
        .expect("token");

    let mut group = c.benchmark_group(GROUP);
    group.bench_function("fresh_signature", |b| {
        b.iter(|| {
            runtime
                .block_on(auth.token_at(now, LOGIN_LIFETIME))
                .expect("token")
        })
    });
    group.bench_function("cached_bearer_token", |b| {
        b.iter(|| {
            runtime
                .block_on(tokens.bearer_token_at(now))
                .expect("token")
        })
    });
    group.finish();
}

/// The mean time of one benchmark of this run, from criterion's estimates file.
fn mean_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let file = dir.join(GROUP).join(id).join("new").join("estimates.json");
    if std::fs::metadata(&file).ok()?.modified().ok()? < since {
        return None; // left over from an earlier run
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

fn main() {
    let started = SystemTime::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    if let (Some(fresh), Some(cached)) = (
        mean_ns(&dir, "fresh_signature", started),
        mean_ns(&dir, "cached_bearer_token", started),
    ) {
        println!(
            "snowflake: cached bearer token {cached:.0} ns, fresh signature {:.0} us: \
             the cache is {:.0}x cheaper per request (and signs once per lifetime)",
            fresh / 1000.0,
            fresh / cached
        );
    }
}
