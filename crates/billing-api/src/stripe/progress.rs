//! How far a run through Stripe's pages has come: a bar on a terminal, a
//! line every ten pages elsewhere (a log, a pipe), nothing in `serve`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Pages and items seen so far, their rate and the time left.
pub struct Progress {
    what: &'static str,
    shown: Shown,
    started: Instant,
    pages: u64,
    items: u64,
    expected: u64,
}

enum Shown {
    Bar(ProgressBar),
    Lines,
    Hidden,
}

impl Progress {
    /// Shown on standard error, as `what` ("subscriptions") go by.
    pub fn on_stderr(what: &'static str) -> Self {
        let shown = if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{spinner} {bar:30} {pos}/{len} {prefix}, {msg}, {per_sec}, about {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
                .with_style(style)
                .with_prefix(what);
            bar.enable_steady_tick(Duration::from_millis(200));
            Shown::Bar(bar)
        } else {
            Shown::Lines
        };
        Self::new(what, shown)
    }

    /// Not shown at all.
    pub fn hidden() -> Self {
        Self::new("items", Shown::Hidden)
    }

    fn new(what: &'static str, shown: Shown) -> Self {
        Self {
            what,
            shown,
            started: Instant::now(),
            pages: 0,
            items: 0,
            expected: 0,
        }
    }

    /// About how many items the run will see (what the database holds):
    /// the time left is estimated from it.
    pub fn expect(&mut self, items: u64) {
        self.expected = items;
        self.show_length();
    }

    /// One more page of `items` items was applied.
    pub fn page(&mut self, items: usize) {
        self.pages += 1;
        self.items += items as u64;
        match &self.shown {
            Shown::Bar(bar) => {
                bar.set_position(self.items);
                bar.set_message(format!("page {}", self.pages));
                self.show_length();
            }
            Shown::Lines if self.pages.is_multiple_of(10) => eprintln!("{}", self.line()),
            Shown::Lines | Shown::Hidden => {}
        }
    }

    /// The run is over: the bar goes, a last line says how it went.
    pub fn finish(&self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
        if !matches!(self.shown, Shown::Hidden) {
            eprintln!("{}", self.line());
        }
    }

    fn show_length(&self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.set_length(self.expected.max(self.items));
        }
    }

    /// `12 pages, 1200 subscriptions in 0.5 s (2400/s), about 3 s left`.
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = self.items as f64 / secs.max(1e-3);
        let mut line = format!(
            "{} pages, {} {} in {secs:.1} s ({rate:.0}/s)",
            self.pages, self.items, self.what
        );
        if self.expected > self.items && rate > 0.0 {
            let left = (self.expected - self.items) as f64 / rate;
            line.push_str(&format!(", about {left:.0} s left"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_counts_pages_and_items_and_estimates_the_rest() {
        let mut progress = Progress::new("subscriptions", Shown::Lines);
        progress.expect(1_000);
        progress.page(100);
        progress.page(100);
        let line = progress.line();
        assert!(line.starts_with("2 pages, 200 subscriptions in "), "{line}");
        assert!(line.contains(" s left"), "{line}");
        progress.page(900);
        assert!(!progress.line().contains("left"), "{}", progress.line());
    }
}
