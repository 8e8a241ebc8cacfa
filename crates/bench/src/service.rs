//! The service under test: the release binary on a database of its own,
//! stopped (and its database dropped) when done.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Where the service keeps its data.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A new database on the PostgreSQL server this URL reaches.
    Postgres(String),
}

impl Store {
    /// `SQLite` or `PostgreSQL`.
    pub fn name(&self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A running service.
pub struct Service {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    /// Its database.
    pub database_url: String,
    fresh: Fresh,
}

enum Fresh {
    Sqlite(#[allow(dead_code, reason = "removed when dropped")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Service {
    /// Starts `binary` on a fresh database of `store`, with `vars` set, and
    /// waits until it answers.
    pub async fn start(
        binary: &Path,
        store: &Store,
        vars: &[(&str, String)],
    ) -> Result<Service, String> {
        let (db_url, fresh) = match store {
            Store::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                (
                    format!("sqlite://{}/billing.db", dir.path().display()),
                    Fresh::Sqlite(dir),
                )
            }
            Store::Postgres(admin_url) => {
                let name = format!(
                    "billing_bench_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
                (
                    with_database(admin_url, &name),
                    Fresh::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                )
            }
        };
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &db_url)
            .env("BILLING__LOG__LEVEL", "warn")
            .env("BILLING__SERVER__HOST", "127.0.0.1")
            .env_remove("BILLING_ENV")
            .stdout(Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let service = Service {
            child,
            addr,
            database_url: db_url,
            fresh,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = crate::http::get(addr, "/readyz", None).await {
                return Ok(service);
            }
            if Instant::now() > deadline {
                return Err("the service did not become ready within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's resident memory, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Stops the service and drops its database.
    pub async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Fresh::Postgres { admin_url, name } = &self.fresh
            && let Err(error) = execute(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
        {
            eprintln!("could not drop {name}: {error}");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs one statement on the server `url` reaches.
pub async fn execute(url: &str, sql: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |i| i + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}
