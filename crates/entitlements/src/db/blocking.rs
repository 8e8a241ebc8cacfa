//! Where SQLite's blocking calls run. diesel-async moves each statement to
//! tokio's blocking pool, two thread switches per statement; a thread that
//! does nothing but write to SQLite (the committer) runs them in place
//! instead, so a transaction of many statements costs no switch at all.

use std::cell::Cell;
use std::error::Error;

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

thread_local! {
    /// Set on a thread whose blocking calls run in place.
    static IN_PLACE: Cell<bool> = const { Cell::new(false) };
}

/// Runs blocking database calls in place on a thread started by
/// [`on_own_thread`], on tokio's blocking pool elsewhere.
pub(crate) struct Blocking;

impl SpawnBlocking for Blocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        if IN_PLACE.get() {
            return std::future::ready(Ok(task())).boxed();
        }
        tokio::task::spawn_blocking(task)
            .map(|joined| joined.map_err(Box::from))
            .boxed()
    }

    fn get_runtime() -> Self {
        Blocking
    }
}

/// Runs `work` to completion on a thread of its own, with a runtime of its
/// own, where database calls block in place: for a task that only writes
/// to SQLite, whose single writer serializes such work anyway.
pub(crate) fn on_own_thread<F>(name: &str, work: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            IN_PLACE.set(true);
            runtime.block_on(work);
        })?;
    Ok(())
}
