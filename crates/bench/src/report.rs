//! The figures beside their targets, as a Markdown table.

use crate::figures::Figures;
use crate::reconcile::Reconciled;

/// Everything measured on one store.
pub struct Run {
    /// `SQLite` or `PostgreSQL`.
    pub store: &'static str,
    /// At each connection count: `/healthz`, then the hot path.
    pub hot: Vec<(usize, Figures, Figures)>,
    /// At each concurrency: webhook ingest.
    pub ingest: Vec<(usize, Figures)>,
    /// At each concurrency: webhook ingest while a notification endpoint
    /// refuses every connection.
    pub ingest_endpoint_down: Vec<(usize, Figures)>,
    /// What the checks after each ingest found.
    pub checks: Vec<String>,
    /// `reconcile` unlimited, then at the test key's rate limit.
    pub reconcile: Vec<Reconciled>,
    /// The service's resident memory after the load.
    pub rss_kib: Option<u64>,
    /// `pgbench`'s one-row upsert on the same server.
    pub pgbench_tps: Option<f64>,
}

impl Run {
    /// Nothing measured yet.
    pub fn new(store: &'static str) -> Self {
        Self {
            store,
            hot: Vec::new(),
            ingest: Vec::new(),
            ingest_endpoint_down: Vec::new(),
            checks: Vec::new(),
            reconcile: Vec::new(),
            rss_kib: None,
            pgbench_tps: None,
        }
    }
}

/// The whole run.
pub struct Report {
    /// One per store.
    pub runs: Vec<Run>,
    /// Organizations seeded.
    pub orgs: usize,
    /// Seconds per measurement.
    pub seconds: u64,
    /// Subscriptions per ingest run.
    pub subscriptions: usize,
    /// Pages `reconcile` read.
    pub reconcile_pages: usize,
    /// Whether this was the few-seconds run.
    pub tiny: bool,
}

/// One line of the table.
struct Line {
    figure: String,
    value: String,
    target: String,
    met: Option<bool>,
}

impl Report {
    /// Whether every check of the final state passed (targets are reported,
    /// not enforced).
    pub fn checks_passed(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.checks.iter().all(|c| !c.starts_with("FAILED")))
            && self.runs.iter().all(|r| {
                r.hot.iter().all(|(_, h, a)| h.errors == 0 && a.errors == 0)
                    && r.ingest.iter().all(|(_, f)| f.errors == 0)
                    && r.ingest_endpoint_down.iter().all(|(_, f)| f.errors == 0)
            })
    }

    fn lines(&self, run: &Run) -> Vec<Line> {
        let mut lines = Vec::new();
        for (n, (connections, health, answers)) in run.hot.iter().enumerate() {
            lines.push(Line {
                figure: format!("`/healthz`, {connections} connections"),
                value: latency(health),
                target: "the stack's ceiling".into(),
                met: None,
            });
            let ratio = answers.per_sec / health.per_sec.max(1.0);
            // The fewer connections say how fast, the more how steady.
            let (target, met) = match n {
                0 => ("≥ 0.8x `/healthz` req/s".to_owned(), Some(ratio >= 0.8)),
                _ => ("p99 ≤ 2 ms".to_owned(), Some(answers.p99_ms <= 2.0)),
            };
            lines.push(Line {
                figure: format!("`GET /v1/entitlements/{{org}}`, {connections} connections"),
                value: format!("{} ({ratio:.2}x `/healthz`)", latency(answers)),
                target,
                met,
            });
        }
        for (concurrency, figures) in &run.ingest {
            let (target, met) = match (run.store, *concurrency, run.pgbench_tps) {
                ("SQLite", 8, _) => (
                    "≥ 3,000 events/s, p99 < 20 ms".to_owned(),
                    Some(figures.per_sec >= 3000.0 && figures.p99_ms < 20.0),
                ),
                (_, 8, Some(tps)) => (
                    format!("≥ 0.5x pgbench ({:.2}x)", figures.per_sec / tps.max(1.0)),
                    Some(figures.per_sec >= 0.5 * tps),
                ),
                _ => (String::new(), None),
            };
            lines.push(Line {
                figure: format!("webhook ingest, {concurrency} concurrent"),
                value: ingest(figures),
                target,
                met,
            });
        }
        for (concurrency, figures) in &run.ingest_endpoint_down {
            let without = run.ingest.iter().find(|(c, _)| c == concurrency);
            let ratio = without.map_or(0.0, |(_, w)| figures.per_sec / w.per_sec.max(1.0));
            lines.push(Line {
                figure: format!(
                    "webhook ingest, {concurrency} concurrent, a notification endpoint down"
                ),
                value: format!("{} ({ratio:.2}x with none)", ingest(figures)),
                target: "≥ 0.9x with none: a dead endpoint does not slow ingest".into(),
                met: Some(ratio >= 0.9),
            });
        }
        if let Some(tps) = run.pgbench_tps {
            lines.push(Line {
                figure: "`pgbench` one-row upsert, 8 clients".into(),
                value: format!("{tps:.0} tps"),
                target: "the database's ceiling".into(),
                met: None,
            });
        }
        for reconciled in &run.reconcile {
            lines.push(reconcile_line(reconciled));
        }
        if let Some(kib) = run.rss_kib {
            lines.push(Line {
                figure: "service RSS after the load".into(),
                value: format!("{:.1} MiB", kib as f64 / 1024.0),
                target: "≤ 64 MiB".into(),
                met: Some(kib <= 64 * 1024),
            });
        }
        lines
    }

    /// The tables, one per store, and the checks.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            out.push_str(&format!(
                "\n### {}\n\n| figure | measured | target | met |\n|---|---|---|---|\n",
                run.store
            ));
            for line in self.lines(run) {
                let met = match line.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {met} |\n",
                    line.figure, line.value, line.target
                ));
            }
            out.push('\n');
            for check in &run.checks {
                out.push_str(&format!("- {check}\n"));
            }
        }
        out
    }

    /// A Markdown document: the machine, the command, the tables.
    pub fn document(&self) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map_or_else(
                || "unknown".into(),
                |kib| format!("{} GiB", kib / 1024 / 1024),
            );
        format!(
            "# Benchmarks\n\n`just bench` wrote this{}. The service (release build) and the load tool share the machine: {cores} cores ({cpu}), {memory} of memory. \
             The load tool keeps connections alive and sends each request as soon as the previous one is answered. \
             {} organizations are seeded first (one subscription each); the hot path spreads its requests over the first 1,000 of them. \
             Each ingest run delivers {} subscriptions' signed events (created, then updated twice, about 5 KB each) in a shuffled order with 5 % duplicates, \
             then checks that every event is recorded once and every organization has the newest update's seats. \
             Ingest at 8 and 32 is then measured again on a fresh service configured to notify an endpoint that refuses every connection, which its sender retries throughout. \
             `billing-api reconcile` then reads {} pages of 100 subscriptions of new organizations from a fake Stripe, once without a rate limit and once at the test key's, and must grant every one. {} s per measurement.\n{}",
            if self.tiny {
                " in its tiny mode (figures meaningless)"
            } else {
                ""
            },
            self.orgs,
            self.subscriptions,
            self.reconcile_pages,
            self.seconds,
            self.markdown()
        )
    }
}

/// Unlimited, the service must apply subscriptions faster than Stripe's
/// test-mode limit hands them out (25 pages of 100 a second); limited, the
/// run must go at that limit: no faster, and not much slower.
fn reconcile_line(run: &Reconciled) -> Line {
    let pages_per_sec = run.pages as f64 / run.seconds.max(1e-3);
    let figure = format!(
        "`reconcile`, {} subscriptions in {} pages",
        run.subscriptions, run.pages
    );
    let value = format!(
        "{:.1} s, {:.0} subscriptions/s ({pages_per_sec:.1} pages/s)",
        run.seconds,
        run.per_sec()
    );
    if run.limit == 0 {
        return Line {
            figure: format!("{figure}, test key (25 requests/s)"),
            value,
            target: "25 pages/s: Stripe's limit binds".into(),
            met: Some((22.0..=25.5).contains(&pages_per_sec)),
        };
    }
    Line {
        figure: format!("{figure}, no rate limit"),
        value,
        target: "≥ 2,500 subscriptions/s (test mode's 25 pages/s; live's 100 need 10,000)".into(),
        met: Some(run.per_sec() >= 2500.0),
    }
}

fn ingest(figures: &Figures) -> String {
    format!(
        "{:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms",
        figures.per_sec, figures.p50_ms, figures.p99_ms, figures.max_ms
    )
}

fn latency(figures: &Figures) -> String {
    format!(
        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        figures.per_sec, figures.p50_ms, figures.p99_ms
    )
}
