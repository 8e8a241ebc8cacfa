//! Connection pools for PostgreSQL and SQLite behind one type.
//!
//! diesel-async has no multi-backend connection, so [`Conn`] is an enum over
//! the two connection types and the crate's `run!` macro expands one query
//! body once per backend. Every query in the crate is written once.

mod blocking;
mod cached;
mod migrate;
pub(crate) mod schema;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection, TransactionManager};
use futures_util::FutureExt;

use crate::Error;

/// SQLite connection driven from async code: on the blocking thread pool,
/// or in place on a thread that runs only SQLite (see [`blocking`]).
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection, blocking::Blocking>;

pub(crate) use blocking::on_own_thread;
pub(crate) use cached::Prepared;

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for several replicas.
    Postgres,
    /// An embedded SQLite file, for a single instance.
    Sqlite,
}

/// How to reach the database and how large a pool to keep.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// `postgres://...`, `sqlite://path/to/file.db` or `sqlite::memory:`.
    pub url: String,
    /// Most connections held open at once.
    pub max_connections: usize,
    /// How long a caller waits for a connection before the database counts
    /// as unavailable.
    pub acquire_timeout: Duration,
    /// PostgreSQL: the longest a statement may run (`statement_timeout`);
    /// everywhere, the longest a delivery waits for its transaction.
    pub statement_timeout: Duration,
    /// PostgreSQL: the longest a statement waits for a row lock another
    /// session holds (`lock_timeout`).
    pub lock_timeout: Duration,
}

/// A pool of connections to either backend.
#[derive(Clone)]
pub struct Database {
    pool: PoolKind,
    url: String,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    max_connections: usize,
    /// SQLite's writers in this process take turns here, in order of
    /// arrival, rather than in SQLite's busy handler, which sleeps (1 ms,
    /// then longer) and lets a writer that came later go first.
    write_turns: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A writer's turn (see [`Database::write_turn`]); the next one's starts
/// when it is dropped.
pub(crate) struct WriteTurn {
    _held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

#[derive(Clone)]
enum PoolKind {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// A connection borrowed from the pool.
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived on the stack; boxing would allocate per query"
)]
pub(crate) enum Pooled {
    Postgres(Object<AsyncPgConnection>),
    Sqlite(Object<SqliteConn>),
}

/// A connection of either backend, as query functions take it.
pub(crate) enum Conn<'a> {
    Postgres(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

/// Builds a deadpool pool for either connection type with the same limits.
macro_rules! build_pool {
    ($manager:expr, $size:expr, $options:expr) => {
        Pool::builder($manager)
            .max_size($size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some($options.acquire_timeout))
            .create_timeout(Some($options.acquire_timeout))
            .build()
            .map_err(|e| Error::Unavailable(e.to_string()))?
    };
}

/// Runs the same diesel-async query body against whichever connection `conn`
/// holds; `$c` names the concrete connection inside the body.
macro_rules! run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres($c) => {
                let $c = &mut **$c;
                $body
            }
            $crate::db::Conn::Sqlite($c) => {
                let $c = &mut **$c;
                $body
            }
        }
    };
}
pub(crate) use run;

/// Inserts every row of `$rows` (a slice of insertable values) into
/// `$table`: one statement on PostgreSQL; on SQLite, which cannot take
/// diesel's batch insert through diesel-async, one per row, each run in
/// place.
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::db::Conn::Postgres(c) if !$rows.is_empty() => {
                let insert = diesel::insert_into($table).values($rows).cached();
                insert.execute(&mut **c).await?;
            }
            $crate::db::Conn::Postgres(_) => {}
            $crate::db::Conn::Sqlite(c) => {
                for row in $rows.iter() {
                    let insert = diesel::insert_into($table).values(row).cached();
                    insert.execute(&mut **c).await?;
                }
            }
        }
    };
}
pub(crate) use insert_all;

impl Database {
    /// Opens a pool for the backend the URL's scheme names. Nothing is
    /// connected yet; SQLite's file and folder are created on first use.
    pub fn connect(options: &DatabaseOptions) -> Result<Self, Error> {
        let url = options.url.trim();
        let pool = match parse_url(url)? {
            (Backend::Postgres, target) => {
                let mut config = ManagerConfig::default();
                config.recycling_method = RecyclingMethod::Fast;
                // A held row lock or a runaway statement fails in bounded
                // time (answered 503) rather than hanging its request.
                let limits = format!(
                    "SET statement_timeout = {}; SET lock_timeout = {}",
                    options.statement_timeout.as_millis(),
                    options.lock_timeout.as_millis()
                );
                config.custom_setup = Box::new(move |target| {
                    setup_postgres(target.to_owned(), limits.clone()).boxed()
                });
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
                    target, config,
                );
                PoolKind::Postgres(build_pool!(manager, options.max_connections, options))
            }
            (Backend::Sqlite, target) => {
                let in_memory = target == ":memory:";
                if !in_memory {
                    create_parent_dir(&target)?;
                }
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.recycling_method = RecyclingMethod::Fast;
                // Waiting for SQLite's lock counts against the same budget
                // as waiting for a connection.
                let pragmas = sqlite_pragmas(options.acquire_timeout.as_millis());
                config.custom_setup = Box::new(move |target| {
                    setup_sqlite(target.to_owned(), pragmas.clone()).boxed()
                });
                let manager =
                    AsyncDieselConnectionManager::<SqliteConn>::new_with_config(target, config);
                // Each `:memory:` connection is a database of its own.
                let size = if in_memory {
                    1
                } else {
                    options.max_connections
                };
                PoolKind::Sqlite(build_pool!(manager, size, options))
            }
        };
        let write_turns = matches!(pool, PoolKind::Sqlite(_)).then(Arc::default);
        Ok(Self {
            pool,
            url: url.to_owned(),
            acquire_timeout: options.acquire_timeout,
            statement_timeout: options.statement_timeout,
            max_connections: options.max_connections,
            write_turns,
        })
    }

    /// Waits for this process's turn to write (SQLite has one writer; a
    /// PostgreSQL writer's turn is at once). Waiting longer than the
    /// acquire timeout counts as the database being unavailable, as
    /// waiting for SQLite's own lock does.
    pub(crate) async fn write_turn(&self) -> Result<WriteTurn, Error> {
        let Some(turns) = &self.write_turns else {
            return Ok(WriteTurn { _held: None });
        };
        tokio::time::timeout(self.acquire_timeout, turns.clone().lock_owned())
            .await
            .map(|guard| WriteTurn { _held: Some(guard) })
            .map_err(|_| Error::Unavailable("waited too long for the turn to write".into()))
    }

    /// The engine behind this pool.
    pub fn backend(&self) -> Backend {
        match self.pool {
            PoolKind::Postgres(_) => Backend::Postgres,
            PoolKind::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Closes the pool: idle connections are dropped and no new ones are
    /// handed out.
    pub fn close(&self) {
        match &self.pool {
            PoolKind::Postgres(pool) => pool.close(),
            PoolKind::Sqlite(pool) => pool.close(),
        }
    }

    /// Checks that a connection can be had and answers a trivial query.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut pooled = self.get().await?;
        run!(&mut pooled.conn(), |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }

    pub(crate) async fn get(&self) -> Result<Pooled, Error> {
        Ok(match &self.pool {
            PoolKind::Postgres(pool) => Pooled::Postgres(pool.get().await?),
            PoolKind::Sqlite(pool) => Pooled::Sqlite(pool.get().await?),
        })
    }

    /// Runs `work` on one pooled connection, outside any transaction.
    pub(crate) async fn read<T>(
        &self,
        work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut pooled = self.get().await?;
        work(&mut pooled.conn()).await
    }

    /// The most connections the pool holds.
    /// The longest a delivery waits for its transaction to be written.
    pub(crate) fn deadline(&self) -> Duration {
        self.statement_timeout
    }

    pub(crate) fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// SQLite settings for a connection of this database's: how long to
    /// wait for another writer's lock, and the write-ahead log. The log is
    /// a property of the file; switching an existing file to it fails at
    /// once while another connection writes, so the first connection to a
    /// file (the migrations') switches it before the pool opens any.
    pub(crate) fn sqlite_setup(&self) -> String {
        sqlite_pragmas(self.acquire_timeout.as_millis())
    }
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Postgres(c) => Conn::Postgres(c),
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl Conn<'_> {
    /// Starts a transaction that writes. SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers never deadlock on a lock upgrade.
    pub(crate) async fn begin_write(&mut self) -> Result<(), Error> {
        match self {
            Conn::Postgres(c) => {
                diesel_async::AnsiTransactionManager::begin_transaction_sql(&mut **c, "BEGIN")
                    .await?
            }
            Conn::Sqlite(c) => {
                c.spawn_blocking(|c| {
                    diesel::connection::AnsiTransactionManager::begin_transaction_sql(
                        c,
                        "BEGIN IMMEDIATE",
                    )
                })
                .await?
            }
        }
        Ok(())
    }

    /// Rolls the transaction back.
    pub(crate) async fn abort(&mut self) -> Result<(), Error> {
        run!(self, |c| rollback(c).await)?;
        Ok(())
    }

    /// Commits on `Ok`, rolls back on `Err`, and passes the result on.
    pub(crate) async fn finish<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(value) => {
                run!(self, |c| commit(c).await)?;
                Ok(value)
            }
            Err(error) => {
                // The rollback's own failure matters less than the cause; a
                // connection left in a transaction is discarded by the pool.
                if let Err(rollback) = run!(self, |c| rollback(c).await) {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(error)
            }
        }
    }
}

async fn commit<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    C::TransactionManager::commit_transaction(conn).await
}

async fn rollback<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    C::TransactionManager::rollback_transaction(conn).await
}

/// Splits a database URL into its backend and the address the driver takes.
fn parse_url(url: &str) -> Result<(Backend, String), Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if !path.is_empty() {
            return Ok((Backend::Sqlite, path.to_owned()));
        }
    }
    Err(Error::UnsupportedUrl(redact_url(url)))
}

/// Hides a password in a URL so it can go into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn create_parent_dir(path: &str) -> Result<(), Error> {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// busy_timeout first: switching to WAL takes a lock that concurrent new
/// connections must wait for rather than fail on.
fn sqlite_pragmas(busy_ms: u128) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
    )
}

async fn setup_postgres(
    url: String,
    limits: String,
) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(&url).await?;
    conn.batch_execute(&limits)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

async fn setup_sqlite(path: String, pragmas: String) -> diesel::ConnectionResult<SqliteConn> {
    let mut conn = SqliteConn::establish(&path).await?;
    conn.batch_execute(&pragmas)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend_by_scheme() {
        assert_eq!(
            parse_url("postgres://u@h/db").ok(),
            Some((Backend::Postgres, "postgres://u@h/db".into()))
        );
        assert_eq!(
            parse_url("sqlite://data/billing.db").ok(),
            Some((Backend::Sqlite, "data/billing.db".into()))
        );
        assert_eq!(
            parse_url("sqlite::memory:").ok(),
            Some((Backend::Sqlite, ":memory:".into()))
        );
        assert!(parse_url("mysql://h/db").is_err());
        assert!(parse_url("sqlite://").is_err());
    }

    fn options(url: &str) -> DatabaseOptions {
        DatabaseOptions {
            url: url.to_owned(),
            max_connections: 4,
            acquire_timeout: Duration::from_millis(100),
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(3),
        }
    }

    #[tokio::test]
    async fn sqlite_writers_take_turns_in_order_of_arrival() {
        let db = Database::connect(&options("sqlite::memory:")).expect("pool");
        let first = db.write_turn().await.expect("the first turn");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for writer in 0..3 {
            let (db, order) = (db.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = db.write_turn().await.expect("a turn");
                order.lock().expect("order").push(writer);
            }));
            // Each writer queues before the next is started.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(order.lock().expect("order").is_empty(), "nobody writes yet");
        drop(first);
        for writer in waiting {
            writer.await.expect("writer");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn a_turn_waited_for_past_the_acquire_timeout_is_unavailable() {
        let db = Database::connect(&options("sqlite::memory:")).expect("pool");
        let held = db.write_turn().await.expect("the first turn");
        let waited = db.write_turn().await;
        assert!(
            matches!(waited, Err(Error::Unavailable(_))),
            "{:?}",
            waited.err()
        );
        drop(held);
        assert!(db.write_turn().await.is_ok());
    }

    #[tokio::test]
    async fn postgres_writers_do_not_wait_for_each_other() {
        // Nothing is connected: turns involve no connection.
        let db = Database::connect(&options("postgres://u@127.0.0.1:1/db")).expect("pool");
        let _first = db.write_turn().await.expect("a turn");
        assert!(db.write_turn().await.is_ok());
    }

    #[test]
    fn passwords_never_reach_error_messages() {
        let message = parse_url("mysql://user:hunter2@host/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("host/db"), "{message}");
    }
}
