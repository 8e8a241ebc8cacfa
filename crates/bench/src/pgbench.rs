//! The database's own ceiling on this machine: `pgbench` running a one-row
//! upsert per transaction on the same server.

use std::process::Command;
use std::time::Duration;

use crate::service::execute;

/// Transactions per second of a one-row `INSERT ... ON CONFLICT DO
/// UPDATE` with `clients` clients for `duration`.
pub async fn upsert_tps(url: &str, clients: usize, duration: Duration) -> Result<f64, String> {
    let table = "billing_bench_upsert";
    execute(
        url,
        &format!("CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, n bigint NOT NULL)"),
    )
    .await?;
    let script = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(
        script.path(),
        format!("\\set id random(1, 100000)\nINSERT INTO {table} (id, n) VALUES (:id, 1) ON CONFLICT (id) DO UPDATE SET n = {table}.n + 1;\n"),
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new(pgbench())
        .args([
            "-n",
            "-M",
            "prepared",
            "-j",
            "2",
            "-c",
            &clients.to_string(),
            "-T",
            &duration.as_secs().max(1).to_string(),
            "-f",
        ])
        .arg(script.path())
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    execute(url, &format!("DROP TABLE IF EXISTS {table}")).await?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    text.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no tps in pgbench's output: {text}"))
}

/// `pgbench` on the path, else PostgreSQL's own folder.
fn pgbench() -> String {
    let on_path = Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return "pgbench".into();
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin/pgbench"))
                .find(|p| p.exists())
        })
        .map_or_else(|| "pgbench".into(), |p| p.display().to_string())
}
