//! Prometheus metrics: HTTP requests, webhook events, Stripe calls and the
//! engine's counters, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use entitlements::{Counters, Outcome};

use crate::cache::CacheStats;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Everything the service counts besides the engine.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(&'static str, String, u16), Histogram>>,
    webhooks: Mutex<BTreeMap<(String, &'static str), u64>>,
    stripe: Mutex<BTreeMap<(&'static str, bool), u64>>,
    notify: Mutex<BTreeMap<(String, &'static str), u64>>,
    notify_backlog: Mutex<BTreeMap<String, i64>>,
    notify_down: Mutex<BTreeMap<String, bool>>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts an HTTP request by method label (from a fixed set, see
    /// `http::count_request`), route pattern and status.
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let mut http = lock(&self.http);
        let histogram = http.entry((method, route.to_owned(), status)).or_default();
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += secs;
    }

    /// Counts a webhook event by type and outcome (`duplicate` included).
    pub fn webhook(&self, event_type: &str, outcome: &'static str) {
        *lock(&self.webhooks)
            .entry((event_type.to_owned(), outcome))
            .or_default() += 1;
    }

    /// Counts a call to Stripe's API by operation and success.
    pub fn stripe_call(&self, operation: &'static str, ok: bool) {
        *lock(&self.stripe).entry((operation, ok)).or_default() += 1;
    }

    /// Counts an attempt at a notification by endpoint and result
    /// (`sent`, `failed`, `given_up`).
    pub fn notification(&self, endpoint: &str, result: &'static str) {
        *lock(&self.notify)
            .entry((endpoint.to_owned(), result))
            .or_default() += 1;
    }

    /// How many organizations have a notification waiting for the endpoint.
    pub fn notify_backlog(&self, endpoint: &str, organizations: i64) {
        lock(&self.notify_backlog).insert(endpoint.to_owned(), organizations);
    }

    /// Whether the endpoint refused every attempt of the last round (its
    /// sender then pauses).
    pub fn notify_down(&self, endpoint: &str, down: bool) {
        lock(&self.notify_down).insert(endpoint.to_owned(), down);
    }

    /// The exposition text, with the engine's counters.
    pub fn render(&self, engine: &Counters, cache: CacheStats, unlinked: Option<i64>) -> String {
        let mut out = Exposition::default();
        if let Some(waiting) = unlinked {
            out.family(
                "billing_unlinked_events",
                "gauge",
                "Webhook events waiting for an organization: link their customers (POST /v1/orgs/{org_id}/customer or billing-api link).",
            );
            out.sample("billing_unlinked_events", &[], waiting);
        }
        out.family(
            "billing_http_request_duration_seconds",
            "histogram",
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), h) in lock(&self.http).iter() {
            let status = status.to_string();
            let labels = [
                ("method", *method),
                ("route", route.as_str()),
                ("status", &status),
            ];
            for (count, bound) in h.buckets.iter().zip(BUCKETS) {
                let bound = bound.to_string();
                out.bucket(&labels, &bound, count);
            }
            out.bucket(&labels, "+Inf", &h.count);
            out.sample("billing_http_request_duration_seconds_sum", &labels, h.sum);
            out.sample(
                "billing_http_request_duration_seconds_count",
                &labels,
                h.count,
            );
        }
        let webhooks = lock(&self.webhooks);
        let webhooks = webhooks.iter().map(|((kind, outcome), count)| {
            ([("type", kind.as_str()), ("outcome", *outcome)], count)
        });
        let help = "Webhook events by type and outcome.";
        out.labelled("billing_webhook_events_total", "counter", help, webhooks);
        let stripe = lock(&self.stripe);
        let stripe = stripe.iter().map(|((operation, ok), count)| {
            let result = if *ok { "ok" } else { "error" };
            ([("operation", *operation), ("result", result)], count)
        });
        let help = "Calls to Stripe's API by operation and result.";
        out.labelled("billing_stripe_requests_total", "counter", help, stripe);
        let notify = lock(&self.notify);
        let notify = notify.iter().map(|((endpoint, result), count)| {
            (
                [("endpoint", endpoint.as_str()), ("result", *result)],
                count,
            )
        });
        let help = "Attempts at notifying internal services, by endpoint and result.";
        out.labelled("billing_notify_messages_total", "counter", help, notify);
        let backlog = lock(&self.notify_backlog);
        let backlog = backlog
            .iter()
            .map(|(endpoint, organizations)| ([("endpoint", endpoint.as_str())], organizations));
        let help = "Organizations with a notification waiting, by endpoint.";
        out.labelled("billing_notify_backlog", "gauge", help, backlog);
        let down = lock(&self.notify_down);
        let down = down
            .iter()
            .map(|(endpoint, down)| ([("endpoint", endpoint.as_str())], u8::from(*down)));
        let help = "1 while an endpoint refuses every attempt (its sender pauses), by endpoint.";
        out.labelled("billing_notify_endpoint_down", "gauge", help, down);
        let changes = engine
            .entitlement_changes()
            .map(|(source, count)| ([("source", source)], count));
        let help = "Changes of organizations' entitlements, by the kind of source that changed.";
        out.labelled(
            "billing_entitlement_changes_total",
            "counter",
            help,
            changes,
        );
        let (batches, batched) = engine.batches();
        let unlabelled = [
            (
                "billing_unknown_price_events_total",
                "counter",
                "Events whose prices no plan lists.",
                engine.unknown_price_events(),
            ),
            (
                "billing_duplicate_events_total",
                "counter",
                "Redeliveries of recorded events.",
                engine.duplicates(),
            ),
            (
                "billing_ingest_transactions_total",
                "counter",
                "Transactions that committed webhook deliveries (group commit).",
                batches,
            ),
            (
                "billing_ingest_deliveries_total",
                "counter",
                "Webhook deliveries those transactions committed.",
                batched,
            ),
            (
                "billing_cache_hits_total",
                "counter",
                "Entitlement answers served from memory.",
                cache.hits,
            ),
            (
                "billing_cache_misses_total",
                "counter",
                "Entitlement answers read from the database.",
                cache.misses,
            ),
            (
                "billing_cache_evictions_total",
                "counter",
                "Organizations dropped from memory to make room.",
                cache.evictions,
            ),
            (
                "billing_cache_organizations",
                "gauge",
                "Organizations held in memory.",
                cache.size as u64,
            ),
            (
                "billing_rules_in_force",
                "gauge",
                "1 while this process's catalog is the one in force; 0: it serves stored answers and computes none.",
                u64::from(!engine.rules_outdated()),
            ),
            (
                "billing_cache_following",
                "gauge",
                "1 while other processes' changes are followed; 0: every answer is read from the database.",
                u64::from(cache.following),
            ),
        ];
        for (name, kind, help, value) in unlabelled {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
        let events =
            Outcome::ALL.map(|outcome| ([("outcome", outcome.as_str())], engine.events(outcome)));
        let help = "Events recorded by the engine, by outcome.";
        out.labelled("billing_events_recorded_total", "counter", help, events);
        out.0
    }
}

/// Prometheus' text exposition format, a family at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// Starts a family: its `HELP` and `TYPE` lines.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample, its label values escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(label, value)| format!("{label}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of samples, each with its labels.
    fn labelled<'a, const N: usize, V: std::fmt::Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = ([(&'a str, &'a str); N], V)>,
    ) {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }

    /// One bucket of the request histogram.
    fn bucket(&mut self, labels: &[(&str, &str); 3], le: &str, count: &u64) {
        let [a, b, c] = *labels;
        let name = "billing_http_request_duration_seconds_bucket";
        self.sample(name, &[a, b, c, ("le", le)], count);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
