//! Prometheus metrics: HTTP requests, webhook events, Stripe calls and the
//! engine's counters, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use entitlements::{Counters, Outcome};

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
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts an HTTP request by method label (see [`method_label`]),
    /// route pattern and status.
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

    /// The exposition text, with the engine's counters.
    pub fn render(&self, engine: &Counters) -> String {
        let mut out = String::new();
        out.push_str("# HELP billing_http_request_duration_seconds HTTP requests by method, route and status.\n");
        out.push_str("# TYPE billing_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in lock(&self.http).iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (count, bound) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "billing_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "billing_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "billing_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "billing_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP billing_webhook_events_total Webhook events by type and outcome.\n");
        out.push_str("# TYPE billing_webhook_events_total counter\n");
        for ((kind, outcome), count) in lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "billing_webhook_events_total{{type=\"{}\",outcome=\"{outcome}\"}} {count}",
                escape(kind)
            );
        }
        out.push_str(
            "# HELP billing_stripe_requests_total Calls to Stripe's API by operation and result.\n",
        );
        out.push_str("# TYPE billing_stripe_requests_total counter\n");
        for ((operation, ok), count) in lock(&self.stripe).iter() {
            let result = if *ok { "ok" } else { "error" };
            let _ = writeln!(
                out,
                "billing_stripe_requests_total{{operation=\"{operation}\",result=\"{result}\"}} {count}"
            );
        }
        let engine_counters = [
            (
                "billing_entitlement_changes_total",
                "Changes of organizations' entitlements.",
                engine.entitlement_changes(),
            ),
            (
                "billing_unknown_price_events_total",
                "Events whose prices no plan lists.",
                engine.unknown_price_events(),
            ),
            (
                "billing_duplicate_events_total",
                "Redeliveries of recorded events.",
                engine.duplicates(),
            ),
        ];
        for (name, help, value) in engine_counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out.push_str(
            "# HELP billing_events_recorded_total Events recorded by the engine, by outcome.\n",
        );
        out.push_str("# TYPE billing_events_recorded_total counter\n");
        for outcome in Outcome::ALL {
            let _ = writeln!(
                out,
                "billing_events_recorded_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                engine.events(outcome)
            );
        }
        out
    }
}

/// The label of a request method: the standard ones by name, any other
/// (clients may send arbitrary tokens) as `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    const KNOWN: [(Method, &str); 8] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
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
