//! The crate's examples, run as their users run them. `cargo test` builds every example (with
//! its required features) next to the test binaries, in `target/<profile>/examples/`; `cargo
//! test --test NAME` alone does not, so a binary older than the sources it is built from is
//! refused rather than run.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::SystemTime;

/// The built example `name`.
///
/// # Panics
/// When it has not been built since its source or the library's changed, saying how to
/// build it.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the example {name} is not built at {}: run the tests with `cargo test --all-features` \
         (which builds the examples), or build it with `cargo build --all-features --example {name}`",
        path.display()
    );
    let built = modified(&path);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The library's sources (not the command-line tool's, which no example uses) and its own.
    let source = newest(&root.join("src"), &root.join("src/bin"))
        .max(modified(&root.join(format!("examples/{name}.rs"))));
    assert!(
        built >= source,
        "the example {name} at {} is older than its sources: run the tests with `cargo test \
         --all-features` (which builds the examples), or build it with `cargo build \
         --all-features --example {name}`",
        path.display()
    );
    path
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The latest modification time of the files under `dir`, but for those under `except`.
fn newest(dir: &Path, except: &Path) -> SystemTime {
    if dir == except {
        return SystemTime::UNIX_EPOCH;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return SystemTime::UNIX_EPOCH;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                newest(&path, except)
            } else {
                modified(&path)
            }
        })
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A running example, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
