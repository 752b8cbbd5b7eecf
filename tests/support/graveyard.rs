//! The "graveyard": a global allocator for tests that, while armed, copies every block being
//! freed into a fixed arena, so a test can search what went back to the allocator for key
//! material. The default `realloc` goes through `alloc` and `dealloc`, so the old block of a
//! moving reallocation is seen too.
//!
//! While a watch list is set, each freed block holding a watched byte run is also attributed:
//! the functions that freed it are recorded, to tell this crate's buffers from a dependency's
//! arithmetic temporaries.
//!
//! Key fixtures are made by `openssl`, and their secret fields are taken from openssl's own
//! DER output, so the needles do not depend on this crate's parsing.
//!
//! The search is an Aho-Corasick automaton over every needle: built optimised as a dependency,
//! it scans a freed block in one pass where hashing each window in unoptimised test code took
//! seconds per RSA case, and it does not allocate, so it can run inside `dealloc` (checked:
//! an allocation made while it runs fails the case).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

const ARENA_BYTES: usize = 64 << 20;
/// A needle: this many secret bytes (or encoded characters) in a row.
pub const WINDOW: usize = 16;

/// Every `WINDOW`-long run of some secrets (made by [`needles`]), ready to be searched for.
#[derive(Clone, Debug)]
pub struct Needles {
    searcher: aho_corasick::AhoCorasick,
}

struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);
// SAFETY: writers reserve disjoint ranges with `USED.fetch_add`; the arena is read only while
// disarmed, after the armed code has returned.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
static USED: AtomicUsize = AtomicUsize::new(0);
static OVERFLOWED: AtomicBool = AtomicBool::new(false);
static ARMED: AtomicBool = AtomicBool::new(false);
static WATCH: AtomicPtr<Needles> = AtomicPtr::new(std::ptr::null_mut());
static LEAKS: Mutex<Vec<Leak>> = Mutex::new(Vec::new());
/// Allocations made by the search inside `dealloc`; there must be none.
static SEARCH_ALLOCATED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static SEARCHING: Cell<bool> = const { Cell::new(false) };
}

/// One case at a time: the graveyard is global.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// A freed block that held watched bytes, and who freed it.
#[derive(Debug, Clone)]
pub struct Leak {
    pub size: usize,
    /// The nearest callers of `dealloc` outside the standard library, innermost first.
    pub freed_by: Vec<String>,
}

impl Leak {
    /// Freed by the `rsa` crate's big-integer arithmetic (`num-bigint-dig` temporaries).
    pub fn in_bignum_arithmetic(&self) -> bool {
        self.freed_by.first().is_some_and(|f| {
            f.trim_start_matches(['<', '&'])
                .starts_with("num_bigint_dig::")
        })
    }
}

pub struct Graveyard;

// SAFETY: every call is forwarded to `System` (`alloc` as `alloc_zeroed`); `dealloc` only reads the block it is given,
// before freeing it, and writes into a range of the arena it reserved.
unsafe impl GlobalAlloc for Graveyard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so a block's unused capacity never carries stale bytes of an earlier block
        // into the search: whatever is found in a freed block was written there while it
        // was allocated, by the code that freed it.
        // SAFETY: `alloc_zeroed` has the contract of `alloc`, which the caller meets.
        unsafe { self.alloc_zeroed(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if SEARCHING.get() {
            SEARCH_ALLOCATED.store(true, Ordering::SeqCst);
        }
        // SAFETY: forwarded as it came, under the same contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            let size = layout.size();
            // SAFETY: the caller hands back a live block of `layout` from this allocator: its
            // `size` bytes are readable until it is freed below.
            let block = unsafe { std::slice::from_raw_parts(ptr, size) };
            let watch = WATCH.load(Ordering::SeqCst);
            // SAFETY: a non-null `WATCH` borrows the needles of the `freed_while` call that
            // armed the graveyard, and that call clears it before it returns.
            if !watch.is_null() && held_in(block, unsafe { &*watch }) {
                // Disarmed while the attribution allocates.
                ARMED.store(false, Ordering::SeqCst);
                let leak = Leak {
                    size,
                    freed_by: callers(),
                };
                LEAKS.lock().unwrap_or_else(|e| e.into_inner()).push(leak);
                ARMED.store(true, Ordering::SeqCst);
            }
            let start = USED.fetch_add(size, Ordering::SeqCst);
            if start.saturating_add(size) <= ARENA_BYTES {
                // SAFETY: `start..start + size` lies in the arena, reserved for this call alone
                // by `fetch_add`; the block is readable (above).
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, (ARENA.0.get() as *mut u8).add(start), size);
                }
            } else {
                OVERFLOWED.store(true, Ordering::SeqCst);
            }
        }
        // SAFETY: every block came from `System` (see `alloc_zeroed`), with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Whether `block` holds a needle, searched without allocating.
fn held_in(block: &[u8], watch: &Needles) -> bool {
    SEARCHING.set(true);
    let held = watch.searcher.is_match(block);
    SEARCHING.set(false);
    held
}

/// The function names on the stack above the allocator, skipping the standard library.
fn callers() -> Vec<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    trace
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("at "))
        .filter_map(|l| l.split_once(": ").map(|(_, f)| f))
        .skip_while(|f| !f.contains("dealloc"))
        .filter(|f| {
            let f = f.trim_start_matches('<');
            ![
                "__rust",
                "alloc::",
                "core::",
                "std::",
                "smallvec::",
                "zeroizing_alloc::",
            ]
            .iter()
            .any(|p| f.starts_with(p))
                && !f.contains("GlobalAlloc")
        })
        .take(4)
        .map(str::to_string)
        .collect()
}

/// What was freed while `f` ran, and the freed blocks that held any of `watch`.
pub struct Freed {
    pub bytes: Vec<u8>,
    pub leaks: Vec<Leak>,
}

/// Runs `f` with the graveyard armed.
pub fn freed_while<T>(watch: Option<&Needles>, f: impl FnOnce() -> T) -> (T, Freed) {
    /// Disarms on the way out, a panic in `f` included: `WATCH` borrows from the caller.
    struct Armed;
    impl Drop for Armed {
        fn drop(&mut self) {
            ARMED.store(false, Ordering::SeqCst);
            WATCH.store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
    LEAKS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    USED.store(0, Ordering::SeqCst);
    OVERFLOWED.store(false, Ordering::SeqCst);
    SEARCH_ALLOCATED.store(false, Ordering::SeqCst);
    let watch = watch.map_or(std::ptr::null_mut(), |w| {
        w as *const Needles as *mut Needles
    });
    WATCH.store(watch, Ordering::SeqCst);
    let armed = Armed;
    ARMED.store(true, Ordering::SeqCst);
    let value = f();
    drop(armed);
    assert!(
        !OVERFLOWED.load(Ordering::SeqCst),
        "graveyard arena too small"
    );
    assert!(
        !SEARCH_ALLOCATED.load(Ordering::SeqCst),
        "the search in dealloc allocated"
    );
    let used = USED.load(Ordering::SeqCst);
    // SAFETY: disarmed, so nothing writes to the arena any more; `used` bytes were written.
    let bytes = unsafe { std::slice::from_raw_parts(ARENA.0.get() as *const u8, used) }.to_vec();
    let leaks = std::mem::take(&mut *LEAKS.lock().unwrap_or_else(|e| e.into_inner()));
    (value, Freed { bytes, leaks })
}

/// Every `WINDOW`-long run of each secret.
pub fn needles<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Needles {
    let windows: BTreeSet<&[u8]> = secrets
        .into_iter()
        .flat_map(|secret| secret.windows(WINDOW))
        .collect();
    Needles {
        searcher: aho_corasick::AhoCorasick::new(windows).unwrap(),
    }
}

/// Where in `haystack` any needle occurs.
pub fn found(haystack: &[u8], needles: &Needles) -> Vec<usize> {
    // Overlapping, so every window that is a needle counts, as when each one was looked up.
    needles
        .searcher
        .find_overlapping_iter(haystack)
        .map(|m| m.start())
        .collect()
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The secret numbers of a PKCS#8 key (big-endian, as DER holds them): d, p, q, dP, dQ, qInv
/// for RSA; the scalar for EC; the seed for Ed25519.
pub fn secret_fields(pkcs8_der: &[u8]) -> Vec<Vec<u8>> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).unwrap();
    match info.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => {
            let key = pkcs1::RsaPrivateKey::try_from(info.private_key).unwrap();
            [
                key.private_exponent,
                key.prime1,
                key.prime2,
                key.exponent1,
                key.exponent2,
                key.coefficient,
            ]
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect()
        }
        "1.2.840.10045.2.1" => vec![
            sec1::EcPrivateKey::try_from(info.private_key)
                .unwrap()
                .private_key
                .to_vec(),
        ],
        "1.3.101.112" => {
            // An OCTET STRING inside the OCTET STRING.
            assert_eq!(&info.private_key[..2], &[0x04, 0x20]);
            vec![info.private_key[2..].to_vec()]
        }
        other => panic!("unexpected key algorithm {other}"),
    }
}

/// The stretches of a PEM file's base64 text that encode only secret bytes, with the line
/// breaks as in the file and without them. None for fields not in the file's DER (an
/// encrypted file).
pub fn secret_text(pem: &[u8], secrets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let der = pem_rfc7468::decode_vec(pem).unwrap().1;
    let text = std::str::from_utf8(pem).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let joined: String = body.concat();
    // Character offset in `joined` -> byte offset in the file.
    let mut file_offset = Vec::new();
    let mut at = text.find('\n').unwrap() + 1;
    for line in &body {
        file_offset.extend(at..at + line.len());
        at += line.len() + 1;
    }
    let mut out = Vec::new();
    for secret in secrets {
        let Some(start) = der.windows(secret.len()).position(|w| w == &secret[..]) else {
            continue;
        };
        // Whole base64 groups strictly inside the field.
        let (first, last) = (start.div_ceil(3), (start + secret.len()) / 3);
        if last <= first {
            continue;
        }
        let (from, to) = (first * 4, last * 4);
        out.push(joined.as_bytes()[from..to].to_vec());
        out.push(pem[file_offset[from]..=file_offset[to - 1]].to_vec());
    }
    out
}

/// Key files made by openssl in a temporary directory, mode 0600.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn private(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A fresh key (`openssl genpkey ARGS`) in `name`; returns its plain PKCS#8 DER.
    pub fn generate(&self, name: &str, args: &[&str]) -> Vec<u8> {
        let pem = self.path(name);
        let mut full = vec!["genpkey", "-out", pem.to_str().unwrap()];
        full.extend(args);
        openssl(&full);
        self.private(name);
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-outform",
            "DER",
            "-in",
            pem.to_str().unwrap(),
        ])
    }

    /// `openssl ARGS -in FROM -out TO`.
    pub fn convert(&self, from: &str, to: &str, args: &[&str]) -> PathBuf {
        let mut full = args.to_vec();
        let (input, output) = (self.path(from), self.path(to));
        full.extend([
            "-in",
            input.to_str().unwrap(),
            "-out",
            output.to_str().unwrap(),
        ]);
        openssl(&full);
        self.private(to)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        fs::write(self.path(name), bytes).unwrap();
        self.private(name)
    }
}
