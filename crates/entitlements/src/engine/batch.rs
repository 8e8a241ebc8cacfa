//! Group commit: deliveries that arrive while a transaction is being
//! written wait for the next one, and are applied together in it (one
//! commit, one fsync), each answered only once that commit is durable.
//! Events are applied in arrival order, so one organization's events keep
//! their order; each keeps its own outcome. If the shared transaction
//! fails, each of its events is applied again in a transaction of its own,
//! so a failing event never fails its neighbours.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Engine;
use super::apply::Arrival;
use super::receive::{Refetched, record};
use super::setwise::brings_state;
use crate::Error;
use crate::clock::now;
use crate::db::{Backend, Conn, on_own_thread};
use crate::event::{Event, PaymentObject};
use crate::receipt::{Delivery, Receipt};
use crate::source::SubscriptionRead;
use crate::store::events;

/// Work waiting for its transaction, and where its result goes.
pub(super) struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<Result<Delivery, Error>>,
}

/// What a committer applies.
pub(super) enum Work {
    /// A webhook delivery: recorded once, then applied.
    Delivery {
        event: Event,
        payload: String,
        refetched: Option<Refetched>,
    },
    /// A subscription as Stripe's API listed it (reconcile): applied like
    /// its events, answered as recorded.
    Listed(SubscriptionRead),
}

/// Where deliveries queue: one queue per committer.
pub(super) type Queue = Arc<tokio::sync::OnceCell<Vec<mpsc::Sender<Job>>>>;

impl Engine {
    /// Queues work for the next transaction and waits for its result.
    pub(super) async fn submit(&self, work: Work) -> Result<Delivery, Error> {
        let queues = self
            .queue
            .get_or_init(async || {
                (0..self.committers())
                    .map(|_| {
                        let (tx, rx) = mpsc::channel(self.max_batch * 4);
                        self.start_committer(rx);
                        tx
                    })
                    .collect()
            })
            .await;
        let queue = &queues[route(&work) % queues.len()];
        let (reply, answer) = oneshot::channel();
        let job = Job { work, reply };
        let deadline = self.db.deadline();
        // Past the deadline the caller answers "try again"; a job whose
        // caller has gone is skipped by its committer if not begun yet, and
        // recorded once however it ends.
        let waited = tokio::time::timeout(deadline, async {
            queue
                .send(job)
                .await
                .map_err(|_| Error::Unavailable("the committer stopped".into()))?;
            answer
                .await
                .map_err(|_| Error::Unavailable("the committer dropped a delivery".into()))?
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "the delivery waited {} ms for its transaction",
                deadline.as_millis()
            )))
        })
    }

    /// How many transactions may be written at once: SQLite has one
    /// writer; PostgreSQL gets half the pool, the rest serves reads.
    fn committers(&self) -> usize {
        match self.db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => (self.db.max_connections() / 2).max(1),
        }
    }

    /// Starts a committer taking deliveries from `rx`. It holds no queue
    /// of its own, so it stops once every engine that could submit to it
    /// is gone. SQLite's runs on a thread of its own where statements run
    /// in place (see `db::on_own_thread`); PostgreSQL's are tasks.
    fn start_committer(&self, rx: mpsc::Receiver<Job>) {
        let committer = Engine {
            queue: Queue::default(),
            ..self.clone()
        };
        if self.db.backend() == Backend::Postgres {
            tokio::spawn(committer.commit_batches(rx));
        } else if let Err(error) = on_own_thread("sqlite-committer", committer.commit_batches(rx)) {
            // Deliveries then find the committer stopped and answer 503.
            tracing::error!(%error, "cannot start the SQLite committer's thread");
        }
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

    async fn commit_batch(&self, mut batch: Vec<Job>) {
        // Callers that stopped waiting (past the deadline) are not applied
        // for: their redelivery will be.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        let shared = self
            .write_if(
                async |conn| self.apply_jobs(conn, &batch).await,
                |results| {
                    results
                        .iter()
                        .all(|applied| !matches!(applied, Applied::Raced))
                },
            )
            .await;
        let failure = match shared {
            Ok(results) if results.iter().all(|a| !matches!(a, Applied::Raced)) => {
                self.counters.batch(results.len());
                for (job, applied) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(applied.delivery()));
                }
                return;
            }
            Ok(_) => "a concurrent delivery recorded one of its events first".to_owned(),
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.reply.send(Err(error));
                }
                return;
            }
            Err(error) => error.to_string(),
        };
        tracing::warn!(
            failure,
            deliveries = batch.len(),
            "a shared transaction was rolled back; applying its deliveries one by one"
        );
        for job in batch {
            let result = self
                .write_if(
                    async |conn| {
                        let mut applied = self.apply_jobs(conn, std::slice::from_ref(&job)).await?;
                        applied
                            .pop()
                            .ok_or_else(|| Error::Corrupt("a job came to nothing".into()))
                    },
                    |applied| matches!(applied, Applied::Done(Delivery::Recorded(_))),
                )
                .await;
            if result.is_ok() {
                self.counters.batch(1);
            }
            let _ = job.reply.send(result.map(Applied::delivery));
        }
    }

    /// Applies the jobs in order, each with its own outcome: runs of jobs
    /// that bring a subscription's state set-wise (see `setwise`), others
    /// one at a time.
    async fn apply_jobs(&self, conn: &mut Conn<'_>, jobs: &[Job]) -> Result<Vec<Applied>, Error> {
        let mut recorded = HashSet::new();
        let mut results = Vec::with_capacity(jobs.len());
        for run in jobs.chunk_by(|a, b| brings_state(&a.work) == brings_state(&b.work)) {
            if run.first().is_some_and(|job| brings_state(&job.work)) {
                let works: Vec<&Work> = run.iter().map(|job| &job.work).collect();
                results.extend(self.apply_states(conn, &works, &mut recorded).await?);
                continue;
            }
            for job in run {
                results.push(self.apply_event(conn, &job.work, &mut recorded).await?);
            }
        }
        Ok(results)
    }

    /// Applies one delivery that brings no subscription state. One of an
    /// event recorded before, or in `recorded` (earlier in this
    /// transaction), is a redelivery and changes nothing; any other is
    /// applied, then recorded once with its outcome.
    async fn apply_event(
        &self,
        conn: &mut Conn<'_>,
        work: &Work,
        recorded: &mut HashSet<String>,
    ) -> Result<Applied, Error> {
        let now = now();
        let Work::Delivery {
            event,
            payload,
            refetched,
        } = work
        else {
            return Err(Error::Corrupt(
                "a listed subscription applies set-wise".into(),
            ));
        };
        if recorded.contains(&event.id) || events::exists(conn, &event.id).await? {
            return Ok(Applied::Done(Delivery::Duplicate));
        }
        recorded.insert(event.id.clone());
        let receipt = match refetched {
            Some(Refetched::Unreadable(reason)) => Receipt::invalid(reason.clone()),
            Some(Refetched::State(fresh)) => {
                let fresh = Some(fresh);
                self.apply(conn, Arrival { event, fresh, now }).await?
            }
            None => {
                let fresh = None;
                self.apply(conn, Arrival { event, fresh, now }).await?
            }
        };
        if !record(conn, event, payload, &receipt, now).await? {
            return Ok(Applied::Raced);
        }
        Ok(Applied::Done(Delivery::Recorded(receipt)))
    }
}

/// What applying a job came to.
pub(super) enum Applied {
    Done(Delivery),
    /// A concurrent delivery of the same event (on another replica)
    /// recorded it first: what this one applied must be rolled back, and
    /// it is a redelivery.
    Raced,
}

impl Applied {
    fn delivery(self) -> Delivery {
        match self {
            Applied::Done(delivery) => delivery,
            Applied::Raced => Delivery::Duplicate,
        }
    }
}

/// Which committer takes an event: one customer's events (so one
/// organization's) always the same one, which keeps their order and keeps
/// two transactions from waiting on each other's organizations. Every
/// object the service handles names its customer as a charge or a dispute
/// does.
fn route(work: &Work) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match work {
        Work::Delivery { event, .. } => {
            let object = event.object::<PaymentObject>().ok();
            match object.as_ref().and_then(PaymentObject::customer_id) {
                Some(customer) => customer.hash(&mut hasher),
                None => event.id.hash(&mut hasher),
            }
        }
        Work::Listed(fresh) => match &fresh.subscription.customer {
            Some(customer) => customer.hash(&mut hasher),
            None => fresh.subscription.id.hash(&mut hasher),
        },
    }
    usize::try_from(hasher.finish()).unwrap_or_default()
}
