//! One endpoint's sender: takes in new changes, posts each organization's
//! next version, and records what became of it. Failures are retried after
//! 1 s, doubling up to 1 h, until `notify.give_up_after_secs`; then the
//! version is given up (a note in the organization's history) and the
//! next goes. A slow or dead endpoint holds up only its own sender, and an
//! organization the endpoint refuses holds up no other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entitlements::Engine;
use entitlements::notify::{Outcome, Outgoing, TAKE_IN_PAGE};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::cache::AnswerCache;
use crate::metrics::Metrics;
use crate::settings::{EndpointSettings, NotifySettings, SigningKey, redact};
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
    /// Whether the endpoint answered any of them (took it, or refused it
    /// with less than a 5xx).
    answered: bool,
    /// The organizations whose version failed because the endpoint as a
    /// whole did (unreachable, timed out, a 5xx).
    unreachable: Vec<String>,
}

/// Whether the endpoint is down: it has failed as a whole, for more than
/// one organization, since it last answered. One organization whose
/// messages always fail is not the endpoint being down: it is retried on
/// its own backoff while every other organization's messages go.
#[derive(Debug, Default)]
struct Health {
    /// The first organization it failed for since it last answered.
    failed_for: Option<String>,
    /// Since when it has been down.
    down_since: Option<Instant>,
}

impl Health {
    /// Takes in a round; returns how long to pause if the endpoint is down:
    /// as long as it has been down and 1 s more (1, 2, 4 s... when nothing
    /// else wakes the sender), at most a minute.
    fn after(&mut self, round: &Round) -> Option<Duration> {
        if round.answered {
            *self = Self::default();
        }
        for org_id in &round.unreachable {
            match &self.failed_for {
                None => self.failed_for = Some(org_id.clone()),
                Some(first) if first != org_id => {
                    self.down_since.get_or_insert_with(Instant::now);
                }
                Some(_) => {}
            }
        }
        let since = self.down_since?;
        Some((since.elapsed() + Duration::from_secs(1)).min(MAX_PAUSE))
    }
}

/// Why a post failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What happened, for the logs and the history; it never holds the
    /// endpoint's user info or query.
    reason: String,
    /// Whether the endpoint as a whole failed (unreachable, timed out, a
    /// 5xx) rather than refused this one message.
    unreachable: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
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
    let mut health = Health::default();
    loop {
        let round = sender.round().await.unwrap_or_else(|error| {
            tracing::warn!(%error, endpoint = sender.name, "notifying failed; trying again");
            Round::default()
        });
        let pause = health.after(&round);
        sender.metrics.notify_down(&sender.name, pause.is_some());
        if let Some(pause) = pause {
            // The endpoint is down: rather than try every organization due
            // (and record each failure), the sender pauses.
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
        // A redirect is not followed: it would turn the POST into a GET
        // whose 200 loses the message, or post the signed body elsewhere.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
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
        let sent = futures_util::future::join_all(due.iter().map(|o| self.send(o))).await;
        let round = Round {
            attempted: due.len(),
            answered: sent.iter().any(|(_, r)| *r != Err(true)),
            unreachable: due
                .iter()
                .zip(&sent)
                .filter(|(_, (_, r))| *r == Err(true))
                .map(|(o, _)| o.change.entitlements.org_id.clone())
                .collect(),
        };
        let outcomes = sent.into_iter().map(|(outcome, _)| outcome);
        let reports: Vec<_> = due.into_iter().zip(outcomes).collect();
        self.engine.notify_report(&self.name, &reports).await?;
        let backlog = self.engine.notify_backlog(&self.name).await?;
        self.metrics.notify_backlog(&self.name, backlog);
        Ok(round)
    }

    /// Posts one version; says what became of it, and whether it failed
    /// because the endpoint as a whole did.
    async fn send(&self, outgoing: &Outgoing) -> (Outcome, Result<(), bool>) {
        let view = &outgoing.change.entitlements;
        let (org_id, version) = (&view.org_id, view.version);
        let (error, unreachable) = match self.post(outgoing).await {
            Ok(()) => {
                self.metrics.notification(&self.name, "sent");
                return (Outcome::Sent, Ok(()));
            }
            Err(failure) => (failure.reason, failure.unreachable),
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
            return (Outcome::GiveUp { error }, Err(unreachable));
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
        let retry = Outcome::Retry {
            at_ms: now.timestamp_millis() + backoff,
            error,
        };
        (retry, Err(unreachable))
    }

    /// Posts the message: a 2xx is success, anything else (a redirect
    /// included) a failure.
    pub(crate) async fn post(&self, outgoing: &Outgoing) -> Result<(), Failure> {
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
            .map_err(|e| Failure {
                reason: describe(e),
                unreachable: true,
            })?;
        let status = response.status();
        let reason = if status.is_success() {
            return Ok(());
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url::Url::parse(&self.url).ok()?.join(l).ok())
                .map_or_else(|| "nowhere".to_owned(), |l| redact(l.as_str()));
            format!(
                "answered {status}, a redirect to {location}, which is not followed: configure the endpoint's final URL"
            )
        } else {
            format!("answered {status}")
        };
        Err(Failure {
            reason,
            unreachable: status.is_server_error(),
        })
    }
}

/// A request's error and its causes, without the URL (whose user info or
/// query may hold credentials).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text
}
