//! `billing-bench`: measures the service as a user would run it, in one
//! run: the hot path (`GET /v1/entitlements/{org}`) against `/healthz`, the
//! stack's ceiling, and webhook ingest at 1, 8 and 32 concurrent
//! deliveries, on SQLite and (given a server) PostgreSQL next to
//! `pgbench`; then checks that nothing acknowledged is missing and nothing
//! was applied twice, and prints each figure beside its target.

mod down;
mod figures;
mod http;
mod ingest;
mod load;
mod pgbench;
mod reconcile;
mod report;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use billing_api::settings::{Settings, Sources};
use clap::Parser;

use crate::report::{Report, Run};
use crate::service::{Service, Store};

/// Load the service and report its figures beside their targets.
#[derive(Debug, Parser)]
#[command(name = "billing-bench")]
struct Args {
    /// The service binary (`cargo build --release` builds it).
    #[arg(long, default_value = "target/release/billing-api")]
    binary: PathBuf,
    /// A PostgreSQL server to measure too; a database of its own is
    /// created there and dropped after.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    postgres: Option<String>,
    /// Organizations seeded (one subscription each) before the hot path
    /// is measured; requests go to the first 1,000.
    #[arg(long, default_value_t = 1000)]
    orgs: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Subscriptions per ingest run, each created and updated twice
    /// (enough for a few seconds of load at each concurrency).
    #[arg(long, default_value_t = 2000)]
    subscriptions: usize,
    /// Pages of 100 subscriptions `reconcile` reads from a fake Stripe, once
    /// at the test key's rate limit and once unlimited.
    #[arg(long, default_value_t = 1000)]
    reconcile_pages: usize,
    /// Also write the results as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A run of a few seconds that only shows everything works.
    #[arg(long)]
    tiny: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.tiny {
        (args.orgs, args.seconds, args.subscriptions) = (20, 1, 20);
        args.reconcile_pages = 3;
    }
    match run(&args).await {
        Ok(report) => {
            println!("{}", report.markdown());
            if let Some(out) = &args.out
                && let Err(error) = std::fs::write(out, report.document())
            {
                eprintln!("cannot write {}: {error}", out.display());
                return ExitCode::FAILURE;
            }
            if report.checks_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<Report, String> {
    let settings = Settings::load(&Sources::from_process(None)).map_err(|e| e.to_string())?;
    let mut stores = vec![Store::Sqlite];
    stores.extend(args.postgres.clone().map(Store::Postgres));
    let mut runs = Vec::new();
    for store in &stores {
        eprintln!("{}: starting", store.name());
        runs.push(measure(args, &settings, store).await?);
    }
    Ok(Report {
        runs,
        orgs: args.orgs,
        seconds: args.seconds,
        subscriptions: args.subscriptions,
        reconcile_pages: args.reconcile_pages,
        tiny: args.tiny,
    })
}

/// Every figure on one store: most on one service, then ingest again on
/// one whose notification endpoint is down.
async fn measure(args: &Args, settings: &Settings, store: &Store) -> Result<Run, String> {
    let token = settings
        .auth
        .tokens
        .iter()
        .find(|t| {
            t.scopes
                .contains(&billing_api::settings::Scope::EntitlementsRead)
        })
        .map(|t| secrecy::ExposeSecret::expose_secret(&t.token).to_owned())
        .ok_or("no token with the entitlements:read scope")?;
    let service = Service::start(&args.binary, store, &[]).await?;
    let result = measure_on(args, settings, store, &service, &token).await;
    service.stop().await;
    let mut run = result?;
    eprintln!("{}: a notification endpoint down", store.name());
    let (figures, checks) = down::ingest(
        &args.binary,
        store,
        settings,
        &token,
        args.subscriptions,
        &[8, 32],
    )
    .await?;
    run.ingest_endpoint_down = figures;
    run.checks.extend(checks);
    Ok(run)
}

async fn measure_on(
    args: &Args,
    settings: &Settings,
    store: &Store,
    service: &Service,
    token: &str,
) -> Result<Run, String> {
    let addr = service.addr;
    let mut run = Run::new(store.name());

    eprintln!("{}: seeding {} organizations", store.name(), args.orgs);
    let seed = ingest::workload(settings, "org", args.orgs, 1, None)?;
    ingest::deliver(addr, settings, &seed, 32).await?;
    let (recorded, duplicates) = ingest::check(addr, token, &seed, 0, 0)
        .await
        .map_err(|e| format!("after seeding: {e}"))?;

    let warmup = Duration::from_millis(if args.tiny { 200 } else { 1000 });
    let duration = Duration::from_secs(args.seconds);
    let hot: Arc<Vec<String>> = Arc::new(
        (0..args.orgs.min(1000))
            .map(|i| format!("/v1/entitlements/org-{i}"))
            .collect(),
    );
    let health = Arc::new(vec!["/healthz".to_owned()]);
    // The tiny run keeps the machine free for whatever runs beside it.
    let connection_counts = if args.tiny { [4, 8] } else { [32, 64] };
    for connections in connection_counts {
        eprintln!("{}: hot path at {connections} connections", store.name());
        let ceiling =
            load::hammer(addr, health.clone(), None, connections, warmup, duration).await?;
        let answers = load::hammer(
            addr,
            hot.clone(),
            Some(token.to_owned()),
            connections,
            warmup,
            duration,
        )
        .await?;
        run.hot.push((connections, ceiling, answers));
    }

    let mut counts = (recorded, duplicates);
    for concurrency in [1, 8, 32] {
        eprintln!(
            "{}: ingest at {concurrency} concurrent deliveries",
            store.name()
        );
        let load = ("ingest", args.subscriptions, concurrency);
        let (figures, check) = ingest::measure(addr, settings, token, load, &mut counts).await?;
        run.checks.push(check);
        run.ingest.push((concurrency, figures));
    }
    run.rss_kib = service.rss_kib();
    for (tag, limit) in [("unlimited", 1_000_000), ("limited", 0)] {
        eprintln!(
            "{}: reconcile of {} pages, {tag}",
            store.name(),
            args.reconcile_pages
        );
        let db = &service.database_url;
        let pages = args.reconcile_pages;
        run.reconcile
            .push(reconcile::run(&args.binary, db, settings, tag, pages, limit).await?);
    }
    if let Store::Postgres(url) = store {
        eprintln!("PostgreSQL: pgbench one-row upsert at 8 clients");
        run.pgbench_tps = Some(pgbench::upsert_tps(url, 8, duration).await?);
    }
    Ok(run)
}
