//! Slows the guessing of tokens: an address may present an unknown token
//! (a bearer token, or one typed into the console's sign-in) at most
//! `per_minute` times a minute, in bursts of that many. Past that, its
//! attempts are refused unchecked, with a `Retry-After`, until its
//! allowance has come back. IPv6 addresses count per /64, the block one
//! machine usually holds.
//!
//! Checking costs one atomic read while no address is refused, so the hot
//! path pays nothing for it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

/// Addresses followed at most; past this, new ones share one allowance, so
/// that many addresses cost no more memory than this.
const MAX_FOLLOWED: usize = 100_000;
/// Where addresses past [`MAX_FOLLOWED`] count.
const OTHERS: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
/// The period the allowance is counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// Failed attempts per address, counted as a rate (GCRA): each failure
/// moves the address's `due` an interval later; an attempt is refused
/// while one more failure would put `due` more than a window ahead.
pub struct Throttle {
    /// `None`: off.
    interval: Option<Duration>,
    /// Where [`Self::busy_until`] counts from.
    epoch: Instant,
    /// Milliseconds after `epoch` until which some address may be refused.
    busy_until: AtomicU64,
    due: Mutex<HashMap<IpAddr, Instant>>,
    trust_forwarded: bool,
}

impl Throttle {
    /// At most `per_minute` failures a minute per address (0: off); with
    /// `trust_forwarded`, the address is the one the proxy names
    /// (`Forwarded`, `X-Forwarded-For`), else the connection's own.
    pub fn new(per_minute: u32, trust_forwarded: bool) -> Self {
        Self {
            interval: (per_minute > 0).then(|| WINDOW / per_minute),
            epoch: Instant::now(),
            busy_until: AtomicU64::new(0),
            due: Mutex::new(HashMap::new()),
            trust_forwarded,
        }
    }

    /// Runs `attempt` for the request's address, unless that address is
    /// refused (`Err(wait)`: its allowance is used up for `wait`); counts a
    /// failure when `failed` says the outcome is one.
    pub fn attempt<T>(
        &self,
        req: &HttpRequest,
        attempt: impl FnOnce() -> T,
        failed: impl FnOnce(&T) -> bool,
    ) -> Result<T, Duration> {
        let address = self.address(req);
        self.check(address)?;
        let outcome = attempt();
        if failed(&outcome) {
            tracing::warn!(address = ?address, path = req.path(), "unknown token");
            self.failed(address);
        }
        Ok(outcome)
    }

    /// The address the request's attempt counts against, if known.
    fn address(&self, req: &HttpRequest) -> Option<IpAddr> {
        let ip = if self.trust_forwarded {
            let info = req.connection_info();
            parse_address(info.realip_remote_addr()?)?
        } else {
            req.peer_addr()?.ip()
        };
        Some(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        })
    }

    /// `Err(wait)` while `address` may not try again: its allowance is
    /// used up for `wait`.
    fn check(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        let (Some(interval), Some(address)) = (self.interval, address) else {
            return Ok(());
        };
        let now = Instant::now();
        if self.millis(now) >= self.busy_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        let due = self.lock();
        let key = followed(&due, address);
        let next = due.get(&key).map_or(now, |&at| at.max(now)) + interval;
        match next.checked_duration_since(now + WINDOW) {
            Some(over) if !over.is_zero() => Err(over),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt of `address`.
    fn failed(&self, address: Option<IpAddr>) {
        let (Some(interval), Some(address)) = (self.interval, address) else {
            return;
        };
        let now = Instant::now();
        let mut due = self.lock();
        if due.len() >= MAX_FOLLOWED && !due.contains_key(&address) {
            due.retain(|_, at| *at > now);
        }
        let key = followed(&due, address);
        let at = due.get(&key).map_or(now, |&at| at.max(now)) + interval;
        due.insert(key, at);
        if let Some(refused_until) = (at + interval).checked_sub(WINDOW) {
            self.busy_until
                .fetch_max(self.millis(refused_until) + 1, Ordering::Relaxed);
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.due
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The key `address` counts under: its own, or the shared one once
/// [`MAX_FOLLOWED`] others are followed.
fn followed(due: &HashMap<IpAddr, Instant>, address: IpAddr) -> IpAddr {
    if due.len() < MAX_FOLLOWED || due.contains_key(&address) {
        address
    } else {
        OTHERS
    }
}

/// An address as a proxy writes it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_address_is_refused_past_its_allowance_and_others_are_not() {
        let throttle = Throttle::new(5, false);
        for _ in 0..5 {
            assert_eq!(throttle.check(at("192.0.2.1")), Ok(()));
            throttle.failed(at("192.0.2.1"));
        }
        let wait = throttle.check(at("192.0.2.1")).unwrap_err();
        // One failure's worth (12 s at 5 a minute) comes back first.
        assert!(wait > Duration::from_secs(11) && wait <= Duration::from_secs(12));
        assert_eq!(throttle.check(at("192.0.2.2")), Ok(()));
    }

    #[test]
    fn an_ipv6_machine_counts_as_its_64_block() {
        let throttle = Throttle::new(5, false);
        let from = |peer: &str| {
            let req = actix_web::test::TestRequest::default()
                .peer_addr(peer.parse().unwrap())
                .to_http_request();
            throttle.address(&req)
        };
        assert_eq!(from("[2001:db8:1:2:3::4]:80"), at("2001:db8:1:2::"));
        assert_eq!(from("[::ffff:192.0.2.1]:80"), at("192.0.2.1"));
        assert_eq!(from("192.0.2.1:80"), at("192.0.2.1"));
    }

    #[test]
    fn a_forwarded_address_counts_only_when_trusted() {
        let req = actix_web::test::TestRequest::default()
            .peer_addr("10.0.0.1:80".parse().unwrap())
            .insert_header(("X-Forwarded-For", "192.0.2.7, 10.0.0.1"))
            .to_http_request();
        assert_eq!(Throttle::new(5, true).address(&req), at("192.0.2.7"));
        assert_eq!(Throttle::new(5, false).address(&req), at("10.0.0.1"));
    }

    #[test]
    fn off_refuses_nothing() {
        let throttle = Throttle::new(0, false);
        for _ in 0..100 {
            throttle.failed(at("192.0.2.1"));
        }
        assert_eq!(throttle.check(at("192.0.2.1")), Ok(()));
    }

    #[test]
    fn proxies_write_addresses_in_several_ways() {
        for text in [
            "192.0.2.1",
            "192.0.2.1:4711",
            "2001:db8::1",
            "[2001:db8::1]:4711",
            "[2001:db8::1]",
        ] {
            assert!(parse_address(text).is_some(), "{text}");
        }
        assert_eq!(parse_address("unknown"), None);
    }

    #[test]
    fn addresses_past_the_followed_share_one_allowance() {
        let throttle = Throttle::new(1, false);
        {
            let far = Instant::now() + Duration::from_secs(3600);
            let mut due = throttle.lock();
            for n in 0..MAX_FOLLOWED as u32 {
                due.insert(IpAddr::V4(n.into()), far);
            }
        }
        throttle.failed(at("2001:db8::1"));
        assert!(throttle.check(at("2001:db8::2")).is_err());
        assert_eq!(throttle.lock().len(), MAX_FOLLOWED + 1);
    }
}
