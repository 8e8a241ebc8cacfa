//! Keeps calls to Stripe within its rate limit: each call waits for its
//! turn, at most `per_second` turns a second, however many tasks call.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Stripe's documented limit for live-mode keys, requests per second.
pub const LIVE_PER_SECOND: u32 = 100;
/// Stripe's documented limit for test-mode keys, requests per second.
pub const TEST_PER_SECOND: u32 = 25;

/// Spaces calls evenly, `1 / per_second` apart.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` calls a second (at least one).
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// The limit Stripe applies to `secret_key`: live keys (`sk_live_`,
    /// `rk_live_`) get more than test keys.
    pub fn for_key(secret_key: &str) -> Self {
        let live = secret_key.starts_with("sk_live_") || secret_key.starts_with("rk_live_");
        Self::new(if live {
            LIVE_PER_SECOND
        } else {
            TEST_PER_SECOND
        })
    }

    /// Waits until this call may go.
    pub async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |next| next.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_go_no_faster_than_the_limit() {
        let limiter = std::sync::Arc::new(RateLimiter::new(25));
        let start = Instant::now();
        let calls: Vec<_> = (0..51)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.turn().await })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        // 51 calls at 25 a second: the first at once, the last 2 s later.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_saves_no_turns_for_later() {
        let limiter = RateLimiter::new(10);
        limiter.turn().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..3 {
            limiter.turn().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[test]
    fn live_keys_get_stripes_live_limit() {
        let interval = |key| RateLimiter::for_key(key).interval;
        assert_eq!(interval("sk_live_x"), Duration::from_millis(10));
        assert_eq!(interval("rk_live_x"), Duration::from_millis(10));
        assert_eq!(interval("sk_test_x"), Duration::from_millis(40));
    }
}
