//! Embedded migrations, one set per backend, applied at start-up.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{Connection, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Backend, Database, parse_url, run};
use crate::Error;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do with the embedded migrations.
#[derive(Debug, Clone, Copy)]
enum Op {
    Apply,
    RevertAll,
}

impl Database {
    /// Applies every pending migration and returns how many ran.
    pub async fn migrate(&self) -> Result<usize, Error> {
        self.migrations(Op::Apply).await
    }

    /// How many migrations compiled into this binary are not applied yet.
    /// A plain read through the pool (no connection of its own, no DDL), so
    /// readiness probes cost what any query costs.
    pub async fn pending_migrations(&self) -> Result<usize, Error> {
        #[derive(diesel::QueryableByName)]
        struct Applied {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let embedded = match self.backend() {
            Backend::Postgres => versions::<diesel::pg::Pg>(POSTGRES)?,
            Backend::Sqlite => versions::<diesel::sqlite::Sqlite>(SQLITE)?,
        };
        let query = diesel::sql_query("SELECT version FROM __diesel_schema_migrations");
        let mut pooled = self.get().await?;
        let applied: Vec<Applied> = match run!(&mut pooled.conn(), |c| query.load(c).await) {
            Ok(applied) => applied,
            // No table of applied migrations: none is applied.
            Err(error) => match Error::from(error) {
                Error::Database(_) => Vec::new(),
                transient => return Err(transient),
            },
        };
        Ok(embedded
            .iter()
            .filter(|version| !applied.iter().any(|a| &a.version == *version))
            .count())
    }

    /// Reverts every applied migration, newest first, and returns how many.
    pub async fn revert_all_migrations(&self) -> Result<usize, Error> {
        self.migrations(Op::RevertAll).await
    }

    /// Diesel's migration harness is synchronous, so it runs on the blocking
    /// pool with a connection of its own.
    async fn migrations(&self, op: Op) -> Result<usize, Error> {
        let (backend, target) = parse_url(self.url())?;
        let sqlite_setup = self.sqlite_setup();
        tokio::task::spawn_blocking(move || {
            let done = match backend {
                Backend::Postgres => {
                    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&target)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    perform(&mut conn, POSTGRES, op)
                }
                Backend::Sqlite => {
                    let mut conn = SqliteConnection::establish(&target)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    conn.batch_execute(&sqlite_setup)
                        .map_err(|e| Error::Unavailable(e.to_string()))?;
                    perform(&mut conn, SQLITE, op)
                }
            };
            done.map_err(|e| Error::Migration(e.to_string()))
        })
        .await
        .map_err(|e| Error::Migration(e.to_string()))?
    }
}

/// The versions of the embedded migrations, as diesel records them.
fn versions<DB: diesel::backend::Backend>(
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, Error> {
    let all = MigrationSource::<DB>::migrations(&migrations)
        .map_err(|e| Error::Migration(e.to_string()))?;
    Ok(all.iter().map(|m| m.name().version().to_string()).collect())
}

fn perform<H, DB>(
    harness: &mut H,
    migrations: EmbeddedMigrations,
    op: Op,
) -> Result<usize, BoxError>
where
    H: MigrationHarness<DB>,
    DB: diesel::backend::Backend,
{
    Ok(match op {
        Op::Apply => harness.run_pending_migrations(migrations)?.len(),
        Op::RevertAll => harness.revert_all_migrations(migrations)?.len(),
    })
}
