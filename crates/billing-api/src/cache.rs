//! The hot path's answers in memory: each organization's serialized body
//! and `ETag`, ready to send. An answer is dropped as soon as a newer
//! version is written, here (before the write's caller is answered) or in
//! another process (told by the database's watcher); it is never served
//! past its recheck time; and while the watcher is not following, nothing
//! is served from memory at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;
use entitlements::{FeatureValue, Signal};

/// One organization's answer at one version.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its version.
    pub version: i64,
    /// `"<version>-<catalog fingerprint>"`.
    pub etag: HeaderValue,
    /// The JSON body.
    pub body: Bytes,
    /// Each catalog feature's value, in the catalog's order of names.
    pub features: Box<[FeatureValue]>,
    /// Whether anything grants it (it is not the default plan).
    pub granted: bool,
    /// From when it must be computed again (unix seconds).
    pub recheck_at: Option<i64>,
}

/// What the cache knows of one organization.
struct Slot {
    /// The newest version known to exist: an older answer is never kept.
    floor: i64,
    answer: Option<Arc<Answer>>,
    /// When it was last served or stored ([`AnswerCache::tick`]).
    used: AtomicU64,
}

/// The share of organizations dropped at once when the cache is full: the
/// least recently used eighth.
const EVICT_DIVISOR: usize = 8;

/// The answers of at most `max_orgs` organizations.
pub struct AnswerCache {
    slots: RwLock<HashMap<Box<str>, Slot>>,
    max_orgs: usize,
    following: AtomicBool,
    /// Grows with every invalidation: a read that saw it move cannot tell
    /// whether its answer is already old.
    invalidations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    started: std::time::Instant,
    /// Woken by every change, here or (followed) on another replica.
    changed: tokio::sync::Notify,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Answers served from memory.
    pub hits: u64,
    /// Answers read from the database.
    pub misses: u64,
    /// Organizations dropped to make room.
    pub evictions: u64,
    /// Organizations held.
    pub size: usize,
    /// Whether other processes' changes are followed (else every answer
    /// is read from the database).
    pub following: bool,
}

/// Before a database read, what the cache had seen; see [`AnswerCache::put`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl AnswerCache {
    /// A cache of at most `max_orgs` organizations (0: off), serving only
    /// once its watcher follows.
    pub fn new(max_orgs: usize) -> Self {
        Self {
            slots: RwLock::default(),
            max_orgs,
            following: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            started: std::time::Instant::now(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Milliseconds since the cache was made: how recently a slot was used.
    fn tick(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The organization's answer, if held and still valid at `now`.
    pub(crate) fn get(&self, org_id: &str, now: i64) -> Option<Arc<Answer>> {
        if self.max_orgs == 0 {
            return None;
        }
        let found = self.following.load(Ordering::Acquire).then(|| {
            let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
            slots.get(org_id).and_then(|slot| {
                slot.used.store(self.tick(), Ordering::Relaxed);
                slot.answer.clone()
            })
        });
        let fresh = found
            .flatten()
            .filter(|a| a.recheck_at.is_none_or(|at| at > now));
        let counter = if fresh.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh
    }

    /// Taken before reading an answer from the database.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.invalidations.load(Ordering::SeqCst))
    }

    /// Keeps `answer`, read from the database after `ticket` was taken,
    /// unless a newer version is known or may have been written meanwhile.
    pub(crate) fn put(&self, org_id: &str, answer: Arc<Answer>, ticket: Ticket) {
        if self.max_orgs == 0 || !self.following.load(Ordering::Acquire) {
            return;
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(org_id) {
            let newer = slot
                .answer
                .as_ref()
                .is_none_or(|held| held.version < answer.version);
            if answer.version >= slot.floor && newer {
                slot.floor = answer.version;
                slot.answer = Some(answer);
                slot.used.store(self.tick(), Ordering::Relaxed);
            }
            return;
        }
        if self.invalidations.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        if slots.len() >= self.max_orgs {
            self.evict(&mut slots);
        }
        let floor = answer.version;
        slots.insert(
            org_id.into(),
            Slot {
                floor,
                answer: Some(answer),
                used: AtomicU64::new(self.tick()),
            },
        );
    }

    /// Drops the least recently used eighth of the organizations (at least
    /// one): one pass over them all for every eighth stored afterwards.
    fn evict(&self, slots: &mut HashMap<Box<str>, Slot>) {
        let mut used: Vec<u64> = slots
            .values()
            .map(|slot| slot.used.load(Ordering::Relaxed))
            .collect();
        let nth = (used.len() / EVICT_DIVISOR).min(used.len().saturating_sub(1));
        let (_, threshold, _) = used.select_nth_unstable(nth);
        let threshold = *threshold;
        let before = slots.len();
        // Everything used before the threshold goes, and of those used at
        // it, only as many as make an eighth.
        let mut room = nth.max(1);
        slots.retain(|_, slot| {
            let used = slot.used.load(Ordering::Relaxed);
            let evict = used < threshold || (used == threshold && room > 0);
            if evict {
                room = room.saturating_sub(1);
            }
            !evict
        });
        let evicted = u64::try_from(before - slots.len()).unwrap_or(u64::MAX);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Version `version` of the organization exists: drops any older
    /// answer.
    pub fn invalidate(&self, org_id: &str, version: i64) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(org_id) {
            slot.floor = slot.floor.max(version);
            if slot.answer.as_ref().is_some_and(|a| a.version < version) {
                slot.answer = None;
            }
        }
    }

    /// Waits for the next change of any organization's entitlements.
    pub async fn next_change(&self) {
        self.changed.notified().await;
    }

    /// Takes in what the database's watcher reports. Whenever it starts or
    /// stops following, everything held is dropped: changes may have gone
    /// unseen.
    pub fn follow(&self, signal: Signal) {
        match signal {
            Signal::Changed { org_id, version } => self.invalidate(&org_id, version),
            Signal::Following | Signal::Lost(_) => {
                let following = signal == Signal::Following;
                self.invalidations.fetch_add(1, Ordering::SeqCst);
                let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
                slots.clear();
                self.following.store(following, Ordering::Release);
                drop(slots);
                match signal {
                    Signal::Lost(why) => tracing::warn!(
                        %why,
                        "not following other processes' changes: answering from the database"
                    ),
                    _ => tracing::info!("following changes: answering from memory"),
                }
            }
        }
    }

    /// Counts for `/metrics`.
    pub fn stats(&self) -> CacheStats {
        let size = self.slots.read().map_or(0, |slots| slots.len());
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            size,
            following: self.following.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(version: i64, recheck_at: Option<i64>) -> Arc<Answer> {
        Arc::new(Answer {
            version,
            etag: HeaderValue::from_static("\"x\""),
            body: Bytes::from_static(b"{}"),
            features: Box::new([]),
            granted: true,
            recheck_at,
        })
    }

    fn following(max_orgs: usize) -> AnswerCache {
        let cache = AnswerCache::new(max_orgs);
        cache.follow(Signal::Following);
        cache
    }

    fn version_of(cache: &AnswerCache, org: &str) -> Option<i64> {
        cache.get(org, 0).map(|a| a.version)
    }

    #[test]
    fn an_answer_is_served_until_a_newer_version_is_written() {
        let cache = following(10);
        cache.put("acme", answer(1, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), Some(1));
        cache.invalidate("acme", 2);
        assert_eq!(version_of(&cache, "acme"), None);
        // A read that started before the write cannot bring the old one back.
        cache.put("acme", answer(1, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), None);
        cache.put("acme", answer(2, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), Some(2));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 2));
    }

    #[test]
    fn a_read_overtaken_by_a_write_elsewhere_is_not_kept() {
        let cache = following(10);
        let ticket = cache.ticket();
        cache.invalidate("beta", 3);
        cache.put("acme", answer(1, None), ticket);
        assert_eq!(version_of(&cache, "acme"), None);
        cache.put("acme", answer(1, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), Some(1));
    }

    #[test]
    fn an_answer_is_not_served_from_its_recheck_time() {
        let cache = following(10);
        cache.put("acme", answer(1, Some(100)), cache.ticket());
        assert!(cache.get("acme", 99).is_some());
        assert!(cache.get("acme", 100).is_none());
    }

    #[test]
    fn the_size_is_bounded_and_the_least_recently_used_go_first() {
        let cache = following(16);
        for n in 0..16 {
            cache.put(&format!("org{n}"), answer(1, None), cache.ticket());
        }
        // org0 and org1 are read again; the next insert makes room.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(cache.get("org0", 0).is_some() && cache.get("org1", 0).is_some());
        std::thread::sleep(std::time::Duration::from_millis(5));
        cache.put("new", answer(1, None), cache.ticket());
        let stats = cache.stats();
        assert!(stats.size <= 16 && stats.evictions >= 2, "{stats:?}");
        for kept in ["org0", "org1", "new"] {
            assert!(cache.get(kept, 0).is_some(), "{kept} was evicted");
        }
    }

    #[test]
    fn nothing_is_served_while_not_following_nor_when_off() {
        let cache = AnswerCache::new(10);
        cache.put("acme", answer(1, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), None);
        cache.follow(Signal::Following);
        cache.put("acme", answer(1, None), cache.ticket());
        assert_eq!(version_of(&cache, "acme"), Some(1));
        cache.follow(Signal::Lost("cut".into()));
        assert_eq!(version_of(&cache, "acme"), None);
        assert!(!cache.stats().following);

        let off = following(0);
        off.put("acme", answer(1, None), off.ticket());
        assert_eq!(version_of(&off, "acme"), None);
    }
}
