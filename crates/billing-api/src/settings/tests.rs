//! Loading and validating settings.

use super::*;

fn sources(vars: &[(&str, &str)]) -> Sources {
    Sources {
        config_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config")),
        environment: "development".into(),
        config_file: None,
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn error(sources: &Sources) -> String {
    Settings::load(sources)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn the_defaults_start_on_sqlite_in_test_mode() {
    let settings = Settings::load(&sources(&[])).unwrap();
    assert_eq!(
        settings.database.url.expose_secret(),
        "sqlite://data/billing.db"
    );
    assert_eq!(settings.server.port, 8080);
    assert!(!settings.livemode());
    assert_eq!(
        settings
            .catalog()
            .unwrap()
            .default_plan()
            .map(|p| p.name.clone()),
        Some("free".into())
    );
}

#[test]
fn conventional_variables_are_read() {
    let settings = Settings::load(&sources(&[
        ("DATABASE_URL", "postgres://db/billing"),
        ("STRIPE_SECRET_KEY", "sk_test_123"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"),
        ("PORT", "9090"),
    ]))
    .unwrap();
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://db/billing"
    );
    assert_eq!(settings.stripe.secret_key.expose_secret(), "sk_test_123");
    let secrets: Vec<&str> = settings
        .stripe
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret())
        .collect();
    assert_eq!(secrets, ["whsec_a", "whsec_b"]);
    assert_eq!(settings.server.port, 9090);
}

#[test]
fn conventional_variables_win_over_prefixed_ones() {
    let settings = Settings::load(&sources(&[
        ("BILLING__DATABASE__URL", "postgres://prefixed/billing"),
        ("DATABASE_URL", "postgres://conventional/billing"),
        ("BILLING__SERVER__PORT", "7070"),
        ("PORT", "9090"),
    ]))
    .unwrap();
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://conventional/billing"
    );
    assert_eq!(settings.server.port, 9090);
}

#[test]
fn prefixed_variables_set_any_key() {
    let settings = Settings::load(&sources(&[
        ("BILLING__STRIPE__TOLERANCE_SECS", "60"),
        ("BILLING__STRIPE__WEBHOOK_SECRETS", "whsec_x,whsec_y"),
    ]))
    .unwrap();
    assert_eq!(settings.stripe.tolerance_secs, 60);
    assert_eq!(settings.stripe.webhook_secrets.len(), 2);
}

#[test]
fn bad_values_are_reported_by_key() {
    let refetch = error(&sources(&[("BILLING__STRIPE__SYNC_MODE", "refetch")]));
    assert!(refetch.contains("stripe.sync_mode: refetch"), "{refetch}");
    assert!(error(&sources(&[("DATABASE_URL", "mysql://x")])).contains("database.url"));
    assert!(error(&sources(&[("STRIPE_SECRET_KEY", "pk_test_1")])).contains("stripe.secret_key"));
    assert!(error(&sources(&[("PORT", "http")])).contains("PORT"));
    assert!(error(&sources(&[("BILLING__STRIPE__SYNC_MODE", "sometimes")])).contains("sync_mode"));
    let live = error(&sources(&[("STRIPE_SECRET_KEY", "sk_live_1")]));
    assert!(live.contains("stripe.secret_key: a live key"), "{live}");
    let wait = error(&sources(&[("BILLING__NOTIFY__MAX_WAIT_SECS", "31")]));
    assert!(
        wait.contains("notify.max_wait_secs: must be at most 30"),
        "{wait}"
    );
    let kept = error(&sources(&[("BILLING__NOTIFY__FEED_RETENTION_DAYS", "0")]));
    assert!(kept.contains("notify.feed_retention_days"), "{kept}");
    let events = error(&sources(&[("BILLING__RETENTION__EVENTS_DAYS", "30")]));
    assert!(events.contains("retention.events_days"), "{events}");
}

#[test]
fn an_unknown_environment_fails_loudly() {
    let mut s = sources(&[]);
    s.environment = "staging".into();
    assert!(error(&s).contains("BILLING_ENV=staging"));
}

#[test]
fn production_refuses_development_defaults() {
    let mut s = sources(&[("STRIPE_SECRET_KEY", "sk_live_1")]);
    s.environment = "production".into();
    assert!(error(&s).contains("stripe.webhook_secrets: required in production"));
    s.vars.insert(
        "STRIPE_WEBHOOK_SECRET".into(),
        "whsec_development_only_do_not_use_in_production".into(),
    );
    assert!(error(&s).contains("development secret is refused"));
    s.vars
        .insert("STRIPE_WEBHOOK_SECRET".into(), "whsec_real".into());
    assert!(error(&s).contains("auth.tokens: production needs at least one token"));
}

#[test]
fn the_console_cookie_is_secure_in_production_only_by_default() {
    let development = Settings::load(&sources(&[])).unwrap();
    assert!(!development.auth.secure_cookie);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let token = "[[auth.tokens]]\nname = \"ops\"\ntoken = \"a-real-token\"\nscopes = [\"admin\"]\n";
    std::fs::write(&tokens, token).unwrap();
    let mut s = sources(&[
        ("STRIPE_SECRET_KEY", "sk_live_1"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_real"),
    ]);
    s.environment = "production".into();
    s.config_file = Some(tokens);
    let production = Settings::load(&s).unwrap();
    assert!(production.auth.secure_cookie);
}

#[test]
fn redirects_must_stay_on_allowed_origins() {
    let settings = Settings::load(&sources(&[])).unwrap();
    assert!(settings.redirect_allowed("http://localhost:3000/anything?x=1"));
    assert!(!settings.redirect_allowed("http://localhost:3001/"));
    assert!(!settings.redirect_allowed("https://evil.example/http://localhost:3000"));
    assert!(!settings.redirect_allowed("/relative"));
    assert!(!settings.redirect_allowed("http://localhost:3000@evil.example/"));
    assert!(!settings.redirect_allowed("http://localhost:30001/"));
    assert!(!settings.redirect_allowed("http://localhost:3000/a b"));
    assert!(settings.redirect_allowed("http://localhost:3000"));
    assert_eq!(
        settings.redirect_pattern(),
        r"^(?:http://localhost:3000)(?:[/?#][\x21-\x7E]*)?$"
    );
}

#[test]
fn a_config_file_overrides_the_defaults_and_variables_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.toml");
    std::fs::write(
        &file,
        "[stripe]\ntolerance_secs = 42\npast_due_grace_days = 3\n",
    )
    .unwrap();
    let mut s = sources(&[("BILLING__STRIPE__PAST_DUE_GRACE_DAYS", "5")]);
    s.config_file = Some(file);
    let settings = Settings::load(&s).unwrap();
    assert_eq!(settings.stripe.tolerance_secs, 42);
    assert_eq!(settings.stripe.past_due_grace_days, 5);

    s.config_file = Some(dir.path().join("missing.toml"));
    assert!(error(&s).contains("missing.toml"));
}
