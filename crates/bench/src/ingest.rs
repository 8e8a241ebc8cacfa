//! Webhook ingest: realistic signed Stripe events (subscription updates of
//! about 5 KB) for many organizations, delivered out of order with
//! duplicates, then a check that the final state is exactly right.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use billing_api::settings::Settings;
use billing_api::stripe::signature::sign;
use billing_api::stripe::trigger::{TriggerSpec, build_event};
use bytes::Bytes;
use secrecy::ExposeSecret;

use crate::figures::{Figures, Latencies, gather};
use crate::http::{Call, Connection};

/// What to send, and what the service must hold afterwards.
pub struct Workload {
    /// Bodies in delivery order (a duplicate repeats an earlier body).
    pub deliveries: Vec<Bytes>,
    /// Each organization's seats once everything is applied.
    pub expected: BTreeMap<String, i64>,
    /// Distinct events among the deliveries.
    pub events: usize,
}

/// `subscriptions` organizations with one subscription each, updated
/// `updates` times (a newer update has more seats). With a `shuffle` seed,
/// shuffled so that older updates often arrive after newer ones, plus 5 %
/// duplicates; without, in order.
pub fn workload(
    settings: &Settings,
    tag: &str,
    subscriptions: usize,
    updates: usize,
    shuffle: Option<u64>,
) -> Result<Workload, String> {
    let now = billing_api_now();
    let mut bodies = Vec::new();
    let mut expected = BTreeMap::new();
    for s in 0..subscriptions {
        let org = format!("{tag}-{s}");
        for u in 0..updates {
            let kind = if u == 0 {
                "customer.subscription.created"
            } else {
                "customer.subscription.updated"
            };
            let quantity = (u + 1) as u64;
            // Distinct seconds, oldest first.
            let mut spec = TriggerSpec::new(kind, &org, now - 10 * (updates - u) as i64);
            spec.quantity = quantity;
            let event = build_event(settings, &spec).map_err(|e| e.to_string())?;
            bodies.push(Bytes::from(event.to_string()));
            expected.insert(org.clone(), quantity as i64);
        }
    }
    let events = bodies.len();
    let Some(seed) = shuffle else {
        return Ok(Workload {
            deliveries: bodies,
            expected,
            events,
        });
    };
    let mut rng = XorShift(seed | 1);
    // Fisher-Yates: any order at all.
    for i in (1..bodies.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        bodies.swap(i, j);
    }
    let duplicates = events / 20;
    for _ in 0..duplicates {
        let original = bodies[(rng.next() % events as u64) as usize].clone();
        let at = (rng.next() % (bodies.len() as u64 + 1)) as usize;
        bodies.insert(at, original);
    }
    Ok(Workload {
        deliveries: bodies,
        expected,
        events,
    })
}

/// Delivers the workload with `concurrency` deliveries at a time, each
/// signed when sent; every delivery must be answered 200.
pub async fn deliver(
    addr: SocketAddr,
    settings: &Settings,
    workload: &Workload,
    concurrency: usize,
) -> Result<Figures, String> {
    let secret = settings
        .stripe
        .webhook_secrets
        .first()
        .ok_or("no webhook secret configured")?
        .expose_secret()
        .to_owned();
    let deliveries = Arc::new(workload.deliveries.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (deliveries, next, secret) = (deliveries.clone(), next.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await?;
            let mut latencies = Latencies::default();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = deliveries.get(i) else { break };
                let signature = sign(&secret, billing_api_now(), body);
                let headers = [
                    ("content-type", "application/json"),
                    ("stripe-signature", signature.as_str()),
                ];
                let call = Call {
                    method: "POST",
                    path: "/webhooks/stripe",
                    headers: &headers,
                    body: body.clone(),
                };
                let sent = Instant::now();
                match conn.send(&call).await {
                    Ok((200, _)) => latencies.record(sent.elapsed()),
                    Ok((status, text)) => {
                        errors += 1;
                        eprintln!(
                            "delivery answered {status}: {}",
                            String::from_utf8_lossy(&text)
                        );
                    }
                    Err(error) => {
                        errors += 1;
                        eprintln!("delivery failed: {error}");
                        conn = Connection::open(addr).await?;
                    }
                }
            }
            Ok::<_, String>((latencies, errors))
        }));
    }
    let (all, errors) = gather(tasks).await?;
    Ok(all.figures(start.elapsed(), errors))
}

/// What the service holds after a load: `Ok` when every event is recorded
/// exactly once and every organization has the newest update's seats.
pub async fn check(
    addr: SocketAddr,
    token: &str,
    workload: &Workload,
    recorded_before: u64,
    duplicates_before: u64,
) -> Result<(u64, u64), String> {
    let (recorded, duplicates) = counts(addr).await?;
    let delivered_duplicates = (workload.deliveries.len() - workload.events) as u64;
    if recorded - recorded_before != workload.events as u64 {
        return Err(format!(
            "{} events recorded, {} sent",
            recorded - recorded_before,
            workload.events
        ));
    }
    if duplicates - duplicates_before != delivered_duplicates {
        return Err(format!(
            "{} duplicates noticed, {delivered_duplicates} sent",
            duplicates - duplicates_before
        ));
    }
    for (org, seats) in &workload.expected {
        let (status, body) =
            crate::http::get(addr, &format!("/v1/entitlements/{org}"), Some(token)).await?;
        let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if status != 200 || body["features"]["seats"].as_i64() != Some(*seats) {
            return Err(format!(
                "{org}: expected {seats} seats, the service answers {status} {body}"
            ));
        }
    }
    Ok((recorded, duplicates))
}

/// Events recorded and redeliveries noticed so far, from `/metrics`.
pub async fn counts(addr: SocketAddr) -> Result<(u64, u64), String> {
    Ok((
        metric(addr, "billing_events_recorded_total{").await?,
        metric(addr, "billing_duplicate_events_total ").await?,
    ))
}

/// The sum of the `/metrics` samples whose lines start with `prefix`.
pub async fn metric(addr: SocketAddr, prefix: &str) -> Result<u64, String> {
    let (_, text) = crate::http::get(addr, "/metrics", None).await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

/// Ingest of a fresh workload (`subscriptions` organizations tagged
/// `tag`) at `concurrency`, then the check of what the service holds;
/// `counts` are the service's totals (see [`counts`]) before, and after
/// once the check passes. Returns the figures and the check's line.
pub async fn measure(
    addr: SocketAddr,
    settings: &Settings,
    token: &str,
    (tag, subscriptions, concurrency): (&str, usize, usize),
    counts: &mut (u64, u64),
) -> Result<(Figures, String), String> {
    let what = format!("{tag} at {concurrency}");
    let seed = Some(concurrency as u64 + 7);
    let workload = workload(
        settings,
        &format!("{tag}{concurrency}"),
        subscriptions,
        3,
        seed,
    )?;
    let figures = deliver(addr, settings, &workload, concurrency).await?;
    let line = match check(addr, token, &workload, counts.0, counts.1).await {
        Ok(after) => {
            *counts = after;
            format!(
                "{what}: {} events and {} duplicates, all accounted for",
                workload.events,
                workload.deliveries.len() - workload.events
            )
        }
        Err(error) => format!("FAILED {what}: {error}"),
    };
    Ok((figures, line))
}

fn billing_api_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A small deterministic generator: the same seed, the same order.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
