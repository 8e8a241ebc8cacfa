//! The overview's chart: webhook events per day by outcome, as an SVG the
//! server draws (the console works without JavaScript and without
//! reaching any other site).

use std::collections::BTreeMap;

use maud::{Markup, html};

/// The outcomes in stacking order, each with its colour.
const OUTCOMES: [(&str, &str); 6] = [
    ("applied", "#2f7d32"),
    ("ignored", "#9e9e9e"),
    ("stale", "#607d8b"),
    ("rejected", "#ef6c00"),
    ("unlinked", "#8e24aa"),
    ("invalid", "#c62828"),
];
const WIDTH: i64 = 600;
const HEIGHT: i64 = 160;

/// Stacked bars, one per day from `first_day` for `days` days (unix day
/// numbers), with a legend and a table-free text alternative.
pub(crate) fn events_per_day(
    per_day: &BTreeMap<i64, BTreeMap<String, i64>>,
    first_day: i64,
    days: i64,
) -> Markup {
    let total = |day: &BTreeMap<String, i64>| day.values().sum::<i64>();
    let highest = per_day.values().map(total).max().unwrap_or(0).max(1);
    let all: i64 = per_day.values().map(total).sum();
    let slot = WIDTH / days.max(1);
    let summary = format!("{all} webhook events in the last {days} days, at most {highest} a day");
    html! {
        figure class="chart" {
            svg role="img" aria-label=(summary) viewBox={"0 0 " (WIDTH) " " (HEIGHT + 20)} xmlns="http://www.w3.org/2000/svg" {
                title { (summary) }
                @for offset in 0..days {
                    @let day = first_day + offset;
                    @let x = offset * slot;
                    @if let Some(counts) = per_day.get(&day) {
                        @for (y, height, colour, label) in bars(counts, highest, day) {
                            rect x=(x + 1) y=(y) width=(slot - 2) height=(height) fill=(colour) { title { (label) } }
                        }
                    }
                }
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#444" {}
                text x="0" y=(HEIGHT + 16) font-size="12" { (date(first_day)) }
                text x=(WIDTH) y=(HEIGHT + 16) font-size="12" text-anchor="end" { (date(first_day + days - 1)) }
            }
            figcaption {
                @for (outcome, colour) in OUTCOMES {
                    span class="legend" { span class="swatch" style={"background:" (colour)} {} (outcome) }
                }
                " · " (summary)
            }
        }
    }
}

/// One day's stacked segments: `(y, height, colour, label)`.
fn bars(
    counts: &BTreeMap<String, i64>,
    highest: i64,
    day: i64,
) -> Vec<(i64, i64, &'static str, String)> {
    let mut top = HEIGHT;
    let mut segments = Vec::new();
    for (outcome, colour) in OUTCOMES {
        let count = counts.get(outcome).copied().unwrap_or(0);
        if count == 0 {
            continue;
        }
        let height = (count * HEIGHT / highest).max(1);
        top -= height;
        segments.push((
            top,
            height,
            colour,
            format!("{}: {count} {outcome}", date(day)),
        ));
    }
    segments
}

fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_in_proportion_to_the_busiest_day() {
        let mut per_day = BTreeMap::new();
        per_day.insert(
            20_000,
            BTreeMap::from([("applied".to_owned(), 30), ("invalid".to_owned(), 10)]),
        );
        per_day.insert(20_001, BTreeMap::from([("applied".to_owned(), 20)]));
        let busiest = bars(&per_day[&20_000], 40, 20_000);
        assert_eq!(busiest.len(), 2);
        assert_eq!(busiest[0].1 + busiest[1].1, HEIGHT);
        assert_eq!(busiest[1].0, 0, "the busiest day's bar reaches the top");
        let svg = events_per_day(&per_day, 20_000, 30).into_string();
        assert!(
            svg.contains("60 webhook events in the last 30 days"),
            "{svg}"
        );
        assert!(svg.contains("2024-10-04: 10 invalid"), "{svg}");
        // SVG in HTML: an element left open would swallow the labels.
        assert!(svg.contains("></line><text"), "{svg}");
    }
}
