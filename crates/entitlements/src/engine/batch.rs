//! Group commit: deliveries that arrive while a transaction is being
//! written wait for the next one, and are applied together in it (one
//! commit, one fsync), each answered only once that commit is durable.
//! Events are applied in arrival order, so one organization's events keep
//! their order; each keeps its own outcome. If the shared transaction
//! fails, each of its events is applied again in a transaction of its own,
//! so a failing event never fails its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Engine, Refetched, record};
use crate::Error;
use crate::clock::now;
use crate::db::Conn;
use crate::event::Event;
use crate::receipt::{Delivery, Receipt};
use crate::store::events;

use super::apply::Arrival;

/// A delivery waiting for its transaction.
pub(super) struct Job {
    pub event: Event,
    pub payload: String,
    pub refetched: Option<Refetched>,
    pub reply: oneshot::Sender<Result<Delivery, Error>>,
}

/// Where deliveries queue for the committer.
pub(super) type Queue = Arc<tokio::sync::OnceCell<mpsc::Sender<Job>>>;

impl Engine {
    /// Queues a delivery for the next transaction and waits for its result.
    pub(super) async fn submit(
        &self,
        event: Event,
        payload: String,
        refetched: Option<Refetched>,
    ) -> Result<Delivery, Error> {
        let queue = self
            .queue
            .get_or_init(async || {
                let (tx, rx) = mpsc::channel(self.max_batch * 4);
                tokio::spawn(self.clone().commit_batches(rx));
                tx
            })
            .await;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            event,
            payload,
            refetched,
            reply,
        };
        queue
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("the committer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the committer dropped a delivery".into()))?
    }

    /// Takes whatever has queued (at least one delivery) and applies it in
    /// one transaction, until the queue closes.
    async fn commit_batches(self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        while rx.recv_many(&mut jobs, self.max_batch).await > 0 {
            let batch = std::mem::take(&mut jobs);
            // A task of its own: a panic fails this batch, not the queue.
            let engine = self.clone();
            if let Err(error) = tokio::spawn(async move { engine.commit_batch(batch).await }).await
            {
                tracing::error!(%error, "a batch of deliveries failed");
            }
        }
    }

    async fn commit_batch(&self, batch: Vec<Job>) {
        let shared = self
            .write(async |conn| {
                let mut results = Vec::with_capacity(batch.len());
                for job in &batch {
                    results.push(self.apply_delivery(conn, job).await?);
                }
                Ok(results)
            })
            .await;
        match shared {
            Ok(results) => {
                self.counters.batch(results.len());
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::warn!(%error, deliveries = batch.len(), "a shared transaction failed; applying its deliveries one by one");
                for job in batch {
                    let result = self
                        .write(async |conn| self.apply_delivery(conn, &job).await)
                        .await;
                    if result.is_ok() {
                        self.counters.batch(1);
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    /// Records one delivery (unless it is a redelivery) and applies it.
    async fn apply_delivery(&self, conn: &mut Conn<'_>, job: &Job) -> Result<Delivery, Error> {
        let (event, now) = (&job.event, now());
        if !events::insert_new(conn, event, &job.payload, now).await? {
            return Ok(Delivery::Duplicate);
        }
        let receipt = match &job.refetched {
            Some(Refetched::Unreadable(reason)) => Receipt::invalid(reason.clone()),
            Some(Refetched::State(fresh)) => {
                let arrival = Arrival {
                    event,
                    fresh: Some(fresh),
                    now,
                };
                self.apply(conn, arrival).await?
            }
            None => {
                let arrival = Arrival {
                    event,
                    fresh: None,
                    now,
                };
                self.apply(conn, arrival).await?
            }
        };
        record(conn, &event.id, &receipt).await?;
        Ok(Delivery::Recorded(receipt))
    }
}
