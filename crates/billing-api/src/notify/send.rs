//! One endpoint's sender: takes in new changes, posts each organization's
//! next version, and records what became of it. Failures are retried after
//! 1 s, doubling up to 1 h, until `notify.give_up_after_secs`; then the
//! version is given up (a note in the organization's history) and the
//! next goes. A slow or dead endpoint holds up only its own sender.

use std::sync::Arc;
use std::time::Duration;

use entitlements::Engine;
use entitlements::notify::{Outgoing, Retry};
use secrecy::ExposeSecret;
use serde_json::json;

use super::SigningKey;
use crate::cache::AnswerCache;
use crate::metrics::Metrics;
use crate::settings::{EndpointSettings, NotifySettings};
use crate::wire::Entitlements;

/// Organizations sent to at once.
const AT_ONCE: i64 = 32;
/// The longest wait between two retries.
const MAX_BACKOFF_MS: i64 = 3_600_000;

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
    loop {
        let busy = match sender.round().await {
            Ok(sent) => sent > 0,
            Err(error) => {
                tracing::warn!(%error, endpoint = sender.name, "notifying failed; trying again");
                false
            }
        };
        if !busy {
            // A change here wakes the sender at once; retries and other
            // replicas' changes are looked for every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), cache.next_change()).await;
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
    /// that is due; returns how many were attempted.
    async fn round(&self) -> Result<usize, entitlements::Error> {
        self.engine.notify_take_in(&self.name).await?;
        let due = self
            .engine
            .notify_due(&self.name, AT_ONCE, self.lease_ms)
            .await?;
        let attempted = due.len();
        let results = futures_util::future::join_all(due.iter().map(|o| self.send(o))).await;
        for result in results {
            result?;
        }
        let backlog = self.engine.notify_backlog(&self.name).await?;
        self.metrics.notify_backlog(&self.name, backlog);
        Ok(attempted)
    }

    /// Posts one version and records what became of it.
    async fn send(&self, outgoing: &Outgoing) -> Result<(), entitlements::Error> {
        let view = &outgoing.change.entitlements;
        let (org_id, version) = (view.org_id.clone(), view.version);
        let error = match self.post(outgoing).await {
            Ok(()) => {
                self.metrics.notification(&self.name, "sent");
                return self.engine.notify_sent(&self.name, &org_id, version).await;
            }
            Err(error) => error,
        };
        let now = chrono::Utc::now();
        let failing_for = now.timestamp() - outgoing.failing_since.unwrap_or(now.timestamp());
        let retry = if failing_for >= self.give_up_after_secs {
            self.metrics.notification(&self.name, "given_up");
            tracing::error!(
                endpoint = self.name,
                org_id,
                version,
                error,
                "notification given up"
            );
            Retry::GiveUp { error: &error }
        } else {
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
            Retry::At {
                at_ms: now.timestamp_millis() + backoff,
                error: &error,
            }
        };
        self.engine.notify_failed(&self.name, outgoing, retry).await
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
