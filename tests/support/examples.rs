//! The crate's examples, run as their users run them. `cargo test` builds every example (with
//! its required features) next to the test binaries, in `target/<profile>/examples/`; `cargo
//! test --test NAME` alone does not, so a binary older than any file it was built from (as
//! cargo's dep-info file beside it lists them) is refused rather than run.

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
    // Cargo lists every file the example was built from (its own source, the library's, the
    // README the crate docs include) in the dep-info file beside it.
    let dep_info = path.with_extension("d");
    let built = modified(&path);
    let changed = |source: &String| match std::fs::metadata(source).and_then(|m| m.modified()) {
        Ok(time) => time > built,
        Err(_) => true, // gone or unreadable: the next build will say
    };
    let stale = std::fs::read_to_string(&dep_info)
        .map(|text| sources(&text).iter().any(changed))
        .unwrap_or(true);
    assert!(
        !stale,
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

/// The files a Makefile-style dep-info text (`target: a b\ c`) names after the target;
/// `\ ` is a space inside a name.
fn sources(dep_info: &str) -> Vec<String> {
    let first = dep_info.lines().next().unwrap_or_default();
    let list = first.split_once(": ").map_or("", |(_, list)| list);
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            ' ' => names.extend((!name.is_empty()).then(|| std::mem::take(&mut name))),
            c => name.push(c),
        }
    }
    names.extend((!name.is_empty()).then_some(name));
    names
}

/// A running example, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
