//! Times and amounts as people read them.

use maud::{Markup, html};

/// A time in UTC, with how long ago (or from now) it is.
pub(crate) fn when(secs: i64, now: i64) -> Markup {
    let Some(at) = chrono::DateTime::from_timestamp(secs, 0) else {
        return html! { (secs) };
    };
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M UTC")) " (" (relative(secs - now)) ")"
        }
    }
}

/// `3 hours ago`, `in 2 days`, `just now`.
pub(crate) fn relative(delta: i64) -> String {
    let magnitude = delta.unsigned_abs();
    let (count, unit) = match magnitude {
        0..60 => return "just now".to_owned(),
        60..3_600 => (magnitude / 60, "minute"),
        3_600..86_400 => (magnitude / 3_600, "hour"),
        86_400..2_592_000 => (magnitude / 86_400, "day"),
        2_592_000..31_536_000 => (magnitude / 2_592_000, "month"),
        _ => (magnitude / 31_536_000, "year"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if delta < 0 {
        format!("{count} {unit}{plural} ago")
    } else {
        format!("in {count} {unit}{plural}")
    }
}

/// Currencies Stripe counts in whole units.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// The amount an event's object carries, with its currency: a Checkout
/// Session's total, an invoice's amount paid (or due), a charge's or a
/// dispute's amount.
pub(crate) fn money(payload: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(payload).ok()?;
    let object = &event["data"]["object"];
    let currency = object["currency"].as_str()?;
    let amount = ["amount_total", "amount_paid", "amount_due", "amount"]
        .iter()
        .find_map(|field| object[field].as_i64())?;
    Some(format_money(amount, currency))
}

fn format_money(amount: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        return format!("{amount} {code}");
    }
    let sign = if amount < 0 { "-" } else { "" };
    let cents = amount.unsigned_abs();
    format!("{sign}{}.{:02} {code}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_relative_to_now() {
        assert_eq!(relative(0), "just now");
        assert_eq!(relative(-90), "1 minute ago");
        assert_eq!(relative(-7_200), "2 hours ago");
        assert_eq!(relative(3 * 86_400), "in 3 days");
        let text = when(1_700_000_000, 1_700_000_000 - 86_400).into_string();
        assert!(text.contains("2023-11-14 22:13 UTC (in 1 day)"), "{text}");
    }

    #[test]
    fn amounts_carry_their_currency() {
        let session = r#"{"data":{"object":{"amount_total":4900,"currency":"usd"}}}"#;
        assert_eq!(money(session).as_deref(), Some("49.00 USD"));
        let yen = r#"{"data":{"object":{"amount":500,"currency":"jpy"}}}"#;
        assert_eq!(money(yen).as_deref(), Some("500 JPY"));
        let invoice = r#"{"data":{"object":{"amount_paid":1999,"currency":"eur"}}}"#;
        assert_eq!(money(invoice).as_deref(), Some("19.99 EUR"));
        assert_eq!(money(r#"{"data":{"object":{"status":"active"}}}"#), None);
    }
}
