//! The client: answers from the local cache while the change feed is
//! followed, from the service (revalidated by `ETag`) otherwise, and from
//! the last answer while the service cannot be reached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::answer::Entitlements;
use crate::follow;

/// Why an answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL or token cannot be used.
    #[error("invalid client settings: {0}")]
    Settings(String),
    /// The service did not answer, and no answer in hand still holds.
    #[error("the billing service cannot be reached: {0}")]
    Unreachable(String),
    /// The service refused the request (a bad token, an invalid id).
    #[error("the billing service answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: String,
    },
}

/// A client of one billing service; cheap to clone, shares its cache.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// How many organizations' answers are kept unless told otherwise.
const MAX_CACHED: usize = 100_000;

pub(crate) struct Inner {
    pub(crate) base: String,
    /// The service's URL, parsed, for paths with an organization's id.
    url: reqwest::Url,
    /// At most this many answers are kept.
    max_cached: usize,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
    pub(crate) cache: RwLock<HashMap<String, Cached>>,
    /// Whether the feed is followed now, so that cached answers are
    /// current.
    pub(crate) following: AtomicBool,
    /// Organizations whose answer is being asked of the service now, with
    /// how many asks: changes the feed brings for them are kept too.
    pub(crate) fetching: Mutex<HashMap<String, usize>>,
    calls: AtomicU64,
    /// The task following the feed; started again if it died (its runtime
    /// was dropped).
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// An answer in hand, and its `ETag` when the service gave one.
pub(crate) struct Cached {
    pub(crate) answer: Entitlements,
    pub(crate) etag: Option<String>,
}

impl Client {
    /// A client of the service at `base_url` with a token that has the
    /// `entitlements:read` scope. The first answer asked for starts
    /// following the change feed (on the caller's tokio runtime).
    pub fn new(base_url: &str, token: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Settings(e.to_string()))?;
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| Error::Settings(format!("{base_url}: {e}")))?;
        if url.cannot_be_a_base() {
            return Err(Error::Settings(format!("{base_url}: not an http(s) URL")));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                base: base_url.trim_end_matches('/').to_owned(),
                url,
                max_cached: MAX_CACHED,
                token: token.to_owned(),
                http,
                cache: RwLock::default(),
                following: AtomicBool::new(false),
                fetching: Mutex::default(),
                calls: AtomicU64::new(0),
                follower: Mutex::default(),
            }),
        })
    }

    /// The same client keeping at most `max` organizations' answers (100,000
    /// unless set): past that, an answer in hand is dropped for a new one,
    /// and asked of the service again when next needed. Set it before the
    /// first answer is asked for.
    pub fn with_max_cached(mut self, max: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_cached = max.max(1);
        }
        self
    }

    /// The organization's entitlements: from memory while the feed is
    /// followed, else asked of the service (`304` keeps the answer in
    /// hand). If the service cannot be reached, the answer in hand serves
    /// until its `valid_until`.
    pub async fn entitlements(&self, org_id: &str) -> Result<Entitlements, Error> {
        self.follow();
        let held = self.held(org_id);
        if let Some((answer, _)) = &held
            && self.inner.following.load(Ordering::SeqCst)
            && answer.holds_at(chrono::Utc::now())
        {
            return Ok(answer.clone());
        }
        let fetching = Fetching::new(&self.inner, org_id);
        let fetched = self
            .fetch(org_id, held.as_ref().and_then(|(_, etag)| etag.clone()))
            .await;
        match fetched {
            Ok(Some(cached)) => {
                // A change the feed brought meanwhile is newer, and stays.
                self.inner.store(org_id, cached);
                drop(fetching);
                self.held(org_id)
                    .map(|(answer, _)| answer)
                    .ok_or_else(|| Error::Unreachable("an answer was lost".into()))
            }
            Ok(None) => held
                .map(|(answer, _)| answer)
                .ok_or_else(|| Error::Unreachable("304 without an answer in hand".into())),
            Err(Error::Unreachable(reason)) => match held {
                Some((answer, _)) if answer.holds_at(chrono::Utc::now()) => Ok(answer),
                _ => Err(Error::Unreachable(reason)),
            },
            Err(other) => Err(other),
        }
    }

    /// Like [`Client::entitlements`], with `default` when no answer can be
    /// had (the service unreachable, and nothing in hand that holds).
    pub async fn entitlements_or(&self, org_id: &str, default: Entitlements) -> Entitlements {
        match self.entitlements(org_id).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, org_id, "entitlements unavailable: the default serves");
                default
            }
        }
    }

    /// Starts following the feed on the caller's runtime, unless a follower
    /// runs already. One whose runtime was dropped has stopped: answers in
    /// hand no longer count as current until a new one has caught up.
    fn follow(&self) {
        let mut follower = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if follower.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        self.inner.following.store(false, Ordering::SeqCst);
        *follower = Some(tokio::spawn(follow::run(Arc::downgrade(&self.inner))));
    }

    /// Whether the change feed is followed now: answers in hand are then
    /// current, and are served with no call.
    pub fn following(&self) -> bool {
        self.inner.following.load(Ordering::SeqCst)
    }

    /// How many organizations' answers are in hand (at most the bound of
    /// [`Client::with_max_cached`]).
    pub fn cached(&self) -> usize {
        let cache = self.inner.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.len()
    }

    /// How many times an answer was asked of the service (the change feed
    /// not counted): what the cache saved is what this did not grow by.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    fn held(&self, org_id: &str) -> Option<(Entitlements, Option<String>)> {
        let cache = self.inner.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .get(org_id)
            .map(|c| (c.answer.clone(), c.etag.clone()))
    }

    /// `GET /v1/entitlements/{org}`: the answer, or `None` for `304`.
    async fn fetch(&self, org_id: &str, etag: Option<String>) -> Result<Option<Cached>, Error> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        let mut url = self.inner.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["v1", "entitlements", org_id]);
        }
        let mut request = self
            .inner
            .http
            .get(url)
            .bearer_auth(&self.inner.token)
            .timeout(Duration::from_secs(5));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 304 {
            return Ok(None);
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        match status {
            200 => {
                let answer = serde_json::from_str(&body).map_err(|e| Error::Refused {
                    status,
                    body: e.to_string(),
                })?;
                Ok(Some(Cached { answer, etag }))
            }
            500.. => Err(Error::Unreachable(format!("{status}: {body}"))),
            _ => Err(Error::Refused { status, body }),
        }
    }
}

/// An ask of the service for an organization's answer, in flight until
/// dropped.
struct Fetching<'a> {
    inner: &'a Inner,
    org_id: &'a str,
}

impl<'a> Fetching<'a> {
    fn new(inner: &'a Inner, org_id: &'a str) -> Self {
        let mut fetching = inner.fetching.lock().unwrap_or_else(|e| e.into_inner());
        *fetching.entry(org_id.to_owned()).or_default() += 1;
        Self { inner, org_id }
    }
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        let mut fetching = self
            .inner
            .fetching
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(asks) = fetching.get_mut(self.org_id) {
            *asks -= 1;
            if *asks == 0 {
                fetching.remove(self.org_id);
            }
        }
    }
}

impl Inner {
    /// Whether changes of the organization are kept: it is cached or being
    /// asked for.
    pub(crate) fn wanted(&self, org_id: &str) -> bool {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(org_id)
            || self
                .fetching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(org_id)
    }

    /// Keeps `cached` unless a newer version is in hand already; a new
    /// organization in a full cache takes the place of another one.
    pub(crate) fn store(&self, org_id: &str, cached: Cached) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match cache.get(org_id) {
            Some(held) if held.answer.version > cached.answer.version => {}
            Some(_) => {
                cache.insert(org_id.to_owned(), cached);
            }
            None => {
                if cache.len() >= self.max_cached
                    && let Some(other) = cache.keys().next().cloned()
                {
                    cache.remove(&other);
                }
                cache.insert(org_id.to_owned(), cached);
            }
        }
    }
}
