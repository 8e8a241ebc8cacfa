//! Following the service's change feed (`GET /v1/changes`, long-polled),
//! so that answers in hand are replaced as soon as they change.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::answer::Entitlements;
use crate::client::{Cached, Inner};

/// How long one request waits for a change.
const WAIT_SECS: u64 = 25;

#[derive(Deserialize)]
struct Page {
    changes: Vec<Change>,
    next: String,
}

#[derive(Deserialize)]
struct Change {
    org_id: String,
    entitlements: Entitlements,
}

/// Follows the feed for as long as the client exists. Until it has read
/// up to the feed's end, and whenever it loses the feed, answers are
/// asked of the service instead.
pub(crate) async fn run(client: Weak<Inner>) {
    let mut cursor: Option<String> = None;
    loop {
        let Some(inner) = client.upgrade() else {
            return;
        };
        match read(&inner, cursor.as_deref()).await {
            Ok(page) => {
                let caught_up = page.changes.is_empty();
                for change in page.changes {
                    // Only organizations asked for (or being asked for
                    // now) are kept.
                    if inner.wanted(&change.org_id) {
                        let cached = Cached {
                            answer: change.entitlements,
                            etag: None,
                        };
                        inner.store(&change.org_id, cached);
                    }
                }
                cursor = Some(page.next);
                if caught_up {
                    inner.following.store(true, Ordering::SeqCst);
                }
            }
            Err(error) => {
                if inner.following.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error, "lost the change feed: answers come from the service");
                }
                if error.starts_with("400") {
                    // The cursor expired: start again from the feed's start.
                    cursor = None;
                }
                drop(inner);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One page after `cursor`: waits for a change once caught up.
async fn read(inner: &Inner, cursor: Option<&str>) -> Result<Page, String> {
    let mut url = format!("{}/v1/changes?limit=500", inner.base);
    if let Some(cursor) = cursor {
        url.push_str(&format!("&after={cursor}"));
        if inner.following.load(Ordering::SeqCst) {
            url.push_str(&format!("&wait={WAIT_SECS}"));
        }
    }
    let response = inner
        .http
        .get(url)
        .bearer_auth(&inner.token)
        .timeout(Duration::from_secs(WAIT_SECS + 10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}
