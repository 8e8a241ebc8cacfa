//! One endpoint's sender: takes in new changes, posts each organization's
//! next version, and records what became of it. Failures are retried after
//! 1 s, doubling up to 1 h, until `notify.give_up_after_secs`; then the
//! version is given up (a note in the organization's history) and the
//! next goes. A slow or dead endpoint holds up only its own sender.

use std::sync::Arc;
use std::time::Duration;

use entitlements::Engine;
use entitlements::notify::{Outcome, Outgoing, TAKE_IN_PAGE};
use secrecy::ExposeSecret;
use serde_json::json;

use super::SigningKey;
use crate::cache::AnswerCache;
use crate::metrics::Metrics;
use crate::settings::{EndpointSettings, NotifySettings};
use crate::wire::Entitlements;

/// Organizations sent to at once.
const AT_ONCE: usize = 32;
/// The longest wait between two retries.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// The longest pause of an endpoint that refuses everything.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// How long an idle sender lets changes gather after the first wakes it,
/// so that a burst is taken in and sent in one round rather than a
/// transaction per change.
const GATHER: Duration = Duration::from_millis(20);

/// What a round came to.
#[derive(Debug, Default)]
struct Round {
    /// Versions attempted.
    attempted: usize,
    /// Of them, those the endpoint took.
    sent: usize,
}

/// What a sender needs.
pub(crate) struct Sender {
    engine: Engine,
    name: String,
    url: String,
    key: SigningKey,
    client: reqwest::Client,
    give_up_after_secs: i64,
    lease_ms: i64,
    metrics: Arc<Metrics>,
}

/// Sends to `endpoint` for as long as the service runs.
pub(crate) async fn run(
    engine: Engine,
    endpoint: EndpointSettings,
    settings: NotifySettings,
    cache: Arc<AnswerCache>,
    metrics: Arc<Metrics>,
) {
    let sender = match Sender::new(engine, endpoint, &settings, metrics) {
        Ok(sender) => sender,
        Err(error) => {
            tracing::error!(error, "cannot notify the endpoint");
            return;
        }
    };
    // Rounds in a row in which every attempt failed.
    let mut down = 0_u32;
    loop {
        let round = sender.round().await.unwrap_or_else(|error| {
            tracing::warn!(%error, endpoint = sender.name, "notifying failed; trying again");
            Round::default()
        });
        down = match (round.attempted, round.sent) {
            (0, _) => down,
            (_, 0) => down + 1,
            _ => 0,
        };
        sender.metrics.notify_down(&sender.name, down > 0);
        if down > 0 {
            // The endpoint refuses everything: rather than try every
            // organization due (and record each failure), the sender
            // pauses, 1 s doubling to a minute, and tries again then.
            let pause = Duration::from_secs(1 << (down - 1).min(6)).min(MAX_PAUSE);
            tokio::time::sleep(pause).await;
        } else if round.attempted < AT_ONCE {
            // A full round means more are due at once; anything less waits.
            // A change here wakes the sender at once; retries and other
            // replicas' changes are looked for every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), cache.next_change()).await;
            tokio::time::sleep(GATHER).await;
        }
    }
}

impl Sender {
    /// A sender to `endpoint`, or why there can be none.
    pub(crate) fn new(
        engine: Engine,
        endpoint: EndpointSettings,
        settings: &NotifySettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let key = SigningKey::parse(endpoint.secret.expose_secret())
            .ok_or_else(|| format!("{}: the secret is not a whsec_ secret", endpoint.name))?;
        let timeout = Duration::from_secs(settings.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("{}: {e}", endpoint.name))?;
        Ok(Self {
            engine,
            name: endpoint.name,
            url: endpoint.url,
            key,
            client,
            give_up_after_secs: i64::try_from(settings.give_up_after_secs).unwrap_or(i64::MAX),
            // Held for twice the timeout: a sender that died lets go soon.
            lease_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 4) * 2 + 1_000,
            metrics,
        })
    }

    /// Takes in new changes and sends every organization's next version
    /// that is due (up to [`AT_ONCE`]).
    async fn round(&self) -> Result<Round, entitlements::Error> {
        while self.engine.notify_take_in(&self.name).await? == TAKE_IN_PAGE {}
        let due = self
            .engine
            .notify_due(&self.name, AT_ONCE, self.lease_ms)
            .await?;
        let outcomes = futures_util::future::join_all(due.iter().map(|o| self.send(o))).await;
        let round = Round {
            attempted: due.len(),
            sent: outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Sent))
                .count(),
        };
        let reports: Vec<_> = due.into_iter().zip(outcomes).collect();
        self.engine.notify_report(&self.name, &reports).await?;
        let backlog = self.engine.notify_backlog(&self.name).await?;
        self.metrics.notify_backlog(&self.name, backlog);
        Ok(round)
    }

    /// Posts one version; says what became of it.
    async fn send(&self, outgoing: &Outgoing) -> Outcome {
        let view = &outgoing.change.entitlements;
        let (org_id, version) = (&view.org_id, view.version);
        let error = match self.post(outgoing).await {
            Ok(()) => {
                self.metrics.notification(&self.name, "sent");
                return Outcome::Sent;
            }
            Err(error) => error,
        };
        let now = chrono::Utc::now();
        let failing_for = now.timestamp() - outgoing.failing_since.unwrap_or(now.timestamp());
        if failing_for >= self.give_up_after_secs {
            self.metrics.notification(&self.name, "given_up");
            tracing::error!(
                endpoint = self.name,
                org_id,
                version,
                error,
                "notification given up"
            );
            return Outcome::GiveUp { error };
        }
        self.metrics.notification(&self.name, "failed");
        tracing::warn!(
            endpoint = self.name,
            org_id,
            version,
            error,
            "notification failed; retrying"
        );
        let backoff = 1_000_i64
            .saturating_mul(1 << outgoing.attempts.min(22))
            .min(MAX_BACKOFF_MS);
        Outcome::Retry {
            at_ms: now.timestamp_millis() + backoff,
            error,
        }
    }

    /// Posts the message: a 2xx is success, anything else the reason.
    pub(crate) async fn post(&self, outgoing: &Outgoing) -> Result<(), String> {
        let view = outgoing.change.entitlements.clone();
        let now = chrono::Utc::now();
        let body = json!({
            "type": "entitlements.changed",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "data": {
                "org_id": view.org_id,
                "version": view.version,
                "previous_version": view.version - 1,
                "entitlements": Entitlements::from(view),
            },
        })
        .to_string();
        let timestamp = now.timestamp();
        let signature = self
            .key
            .sign(&outgoing.message_id, timestamp, body.as_bytes());
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &outgoing.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("answered {status}")),
        }
    }
}
