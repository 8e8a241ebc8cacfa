//! The background room: what the service does besides answering
//! requests. Computing stored answers again under the rules in force,
//! applying what time alone changed (the sweeper, with retention),
//! following other processes' changes for the answers in memory (the
//! cache listener), reconciling with Stripe periodically, and telling
//! internal services of changes (`notify`). The application owns these
//! tasks and stops them when it stops. It may import the Stripe room and
//! the shared modules at the crate's root, never `http` or `cli`.

use std::sync::Arc;
use std::time::Duration;

use entitlements::{Engine, Retention};
use tokio::task::JoinHandle;

pub(crate) mod notify;

use crate::cache::AnswerCache;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::stripe::api::StripeApi;
use crate::stripe::progress::Progress;
use crate::stripe::reconcile::reconcile;

/// The running background tasks.
pub(crate) struct Background(Vec<JoinHandle<()>>);

impl Background {
    /// Starts the tasks the settings ask for.
    pub(crate) fn start(
        engine: &Engine,
        stripe: Option<&StripeApi>,
        settings: &Settings,
        cache: &Arc<AnswerCache>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let mut tasks = vec![
            tokio::spawn(follow_rules(engine.clone())),
            tokio::spawn(sweep_periodically(
                engine.clone(),
                Duration::from_millis(settings.sweep.every_ms),
                settings.retention.retention(),
                Duration::from_millis(settings.retention.check_every_ms),
            )),
        ];
        if settings.cache.max_orgs > 0 {
            let (db, cache) = (engine.database().clone(), cache.clone());
            let poll = Duration::from_millis(settings.cache.poll_ms);
            tasks.push(tokio::spawn(async move {
                db.watch(poll, move |signal| cache.follow(signal)).await;
            }));
        }
        for endpoint in &settings.notify.endpoints {
            tasks.push(tokio::spawn(crate::background::notify::run(
                engine.clone(),
                endpoint.clone(),
                settings.notify.clone(),
                cache.clone(),
                metrics.clone(),
            )));
        }
        if let (Some(api), every @ 1..) = (stripe, settings.stripe.reconcile_every_secs) {
            tasks.push(tokio::spawn(reconcile_periodically(
                engine.clone(),
                api.clone(),
                Duration::from_secs(every),
            )));
        }
        Self(tasks)
    }

    /// Stops every task. Each transaction they run is a task of its own,
    /// so stopping never cuts one short: it ends between two of them.
    pub(crate) fn stop(self) {
        for task in self.0 {
            task.abort();
        }
    }
}

/// Brings every stored answer under the catalog and policy in force, in the
/// background; reads recompute the organizations it has not reached yet.
async fn follow_rules(engine: Engine) {
    match engine.follow_rules().await {
        Ok(0) => {}
        Ok(recomputed) => tracing::info!(
            recomputed,
            "answers computed again under the rules in force"
        ),
        Err(error) => {
            tracing::error!(%error, "computing answers under the rules in force stopped; reads still do")
        }
    }
}

/// Applies what time alone changed every `every`: each due answer is
/// recomputed, versioned and announced with no read to prompt it. At
/// start-up and then every `prune_every`, deletes what is past its
/// retention, batch after batch while there is some.
async fn sweep_periodically(
    engine: Engine,
    every: Duration,
    retention: Retention,
    prune_every: Duration,
) {
    /// Organizations recomputed in one go; a full batch is followed at once
    /// by the next.
    const BATCH: i64 = 100;
    /// Rows of each kind deleted in one transaction.
    const PRUNE_BATCH: i64 = 1000;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_at = tokio::time::Instant::now();
    loop {
        ticks.tick().await;
        loop {
            match engine.sweep(BATCH).await {
                Ok(done) if done == BATCH as usize => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "applying what time changed failed; retrying at the next interval");
                    break;
                }
            }
        }
        if tokio::time::Instant::now() < prune_at {
            continue;
        }
        prune_at = tokio::time::Instant::now() + prune_every;
        loop {
            match engine.prune(retention, PRUNE_BATCH).await {
                Ok(0) => break,
                Ok(pruned) => tracing::debug!(pruned, "deleted what is past its retention"),
                Err(error) => {
                    tracing::warn!(%error, "deleting what is past its retention failed; retrying at the next interval");
                    break;
                }
            }
        }
    }
}

/// Reconciles with Stripe every `every`, for as long as the service runs.
async fn reconcile_periodically(engine: Engine, api: StripeApi, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match reconcile(&engine, &api, None, false, &mut Progress::hidden()).await {
            Ok(summary) => tracing::info!(%summary, "reconciled with Stripe"),
            Err(error) => {
                tracing::error!(%error, "reconciliation failed; retrying at the next interval")
            }
        }
    }
}
