//! The cache of verified session tokens: a browser sends the same token on every request, so
//! a token is verified once and its session served from memory until the token expires.
//!
//! Entries are found by a keyed hash of the token's signature part and confirmed by comparing
//! the whole token, so a different token never hits another's entry. The cache is split into
//! [`REPLICAS`] independent parts, each used by a fixed share of the threads, so threads that
//! verify at the same moment (even the same token) touch different locks and reference
//! counts. A token seen on several threads may be cached in several parts.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use super::token::Session;

/// How many independent parts the cache is split into (threads share them round-robin).
pub(crate) const REPLICAS: usize = 16;

/// What an entry is charged beyond its token's length: the decoded claims (counted as twice
/// the encoded payload) and fixed overhead.
pub(crate) fn entry_cost(token: &str, payload_len: usize) -> usize {
    token.len() + 2 * payload_len + 256
}

pub(crate) struct TokenCache {
    replicas: Box<[Padded]>,
    /// Bytes each replica may hold ([`entry_cost`] summed).
    budget: usize,
    hasher: RandomState,
}

/// One replica per cache line pair, so threads reading their own replica do not contend on
/// a neighbour's lock word (false sharing).
#[derive(Default)]
#[repr(align(128))]
struct Padded(RwLock<Replica>);

#[derive(Default)]
struct Replica {
    entries: HashMap<u64, Vec<Entry>, BuildHasherDefault<PassThrough>>,
    bytes: usize,
}

struct Entry {
    token: Box<str>,
    session: Session,
    /// Unix seconds: the cached session is returned for `valid_from <= now < valid_until`.
    valid_from: u64,
    valid_until: u64,
    cost: usize,
}

/// The keys are already keyed SipHash values.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn replica_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % REPLICAS;
    }
    SLOT.with(|slot| *slot)
}

impl TokenCache {
    /// A cache holding at most `budget` bytes (as counted by [`entry_cost`]) in all.
    pub(crate) fn new(budget: usize) -> Self {
        TokenCache {
            replicas: (0..REPLICAS).map(|_| Padded::default()).collect(),
            budget: budget / REPLICAS,
            hasher: RandomState::new(),
        }
    }

    fn key(&self, token: &str) -> u64 {
        // The signature is the last part: distinct for distinct tokens that verified.
        let tail = &token.as_bytes()[token.len().saturating_sub(64)..];
        self.hasher.hash_one(tail)
    }

    /// The cached session for exactly `token`, if it is still valid at `now` (Unix seconds).
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Session> {
        if self.budget == 0 {
            return None;
        }
        let key = self.key(token);
        let replica = self.replicas[replica_index()]
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        replica
            .entries
            .get(&key)?
            .iter()
            .find(|e| &*e.token == token)
            .filter(|e| e.valid_from <= now && now < e.valid_until)
            .map(|e| e.session.clone())
    }

    /// Caches a verified token's session for `valid_from <= now < valid_until`; `cost` from
    /// [`entry_cost`]. A full replica first drops what has expired, then everything.
    pub(crate) fn insert(
        &self,
        token: &str,
        session: &Session,
        valid_from: u64,
        valid_until: u64,
        now: u64,
        cost: usize,
    ) {
        if cost > self.budget || valid_until <= now {
            return;
        }
        let key = self.key(token);
        let mut replica = self.replicas[replica_index()]
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if replica.bytes + cost > self.budget {
            let mut freed = 0;
            replica.entries.retain(|_, bucket| {
                bucket.retain(|e| {
                    let keep = now < e.valid_until;
                    if !keep {
                        freed += e.cost;
                    }
                    keep
                });
                !bucket.is_empty()
            });
            replica.bytes -= freed;
            if replica.bytes + cost > self.budget {
                replica.entries.clear();
                replica.bytes = 0;
            }
        }
        let bucket = replica.entries.entry(key).or_default();
        if bucket.iter().any(|e| &*e.token == token) {
            return;
        }
        bucket.push(Entry {
            token: token.into(),
            session: session.clone(),
            valid_from,
            valid_until,
            cost,
        });
        replica.bytes += cost;
    }

    /// How many tokens are cached, in all replicas.
    pub(crate) fn len(&self) -> usize {
        self.replicas
            .iter()
            .map(|r| {
                r.0.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }
}
