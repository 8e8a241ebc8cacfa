//! Checks on settings that types alone cannot express.

use config::{Config, File, FileFormat};
use entitlements::Catalog;
use secrecy::ExposeSecret;
use url::Url;

use super::SigningKey;
use super::{DEFAULT_TOML, Settings, SettingsError};

impl Settings {
    /// Checks everything that types alone do not: URLs, key formats, the
    /// catalog, and that production runs with no development default.
    pub fn validate(&self, environment: &str) -> Result<(), SettingsError> {
        let fail = |key: &str, message: String| Err(SettingsError(format!("{key}: {message}")));
        let db_url = self.database.url.expose_secret();
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| db_url.starts_with(p))
        {
            return fail(
                "database.url",
                "must start with postgres:// or sqlite://".into(),
            );
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1".into());
        }
        if self.database.statement_timeout_ms == 0 || self.database.lock_timeout_ms == 0 {
            return fail(
                "database.statement_timeout_ms",
                "it and lock_timeout_ms must be at least 1 (0 would wait forever)".into(),
            );
        }
        if self.database.max_batch == 0 {
            return fail("database.max_batch", "must be at least 1".into());
        }
        if self.notify.max_wait_secs > 30 {
            return fail("notify.max_wait_secs", "must be at most 30".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for endpoint in &self.notify.endpoints {
            let key = "notify.endpoints";
            if endpoint.name.is_empty() || !names.insert(endpoint.name.as_str()) {
                return fail(
                    key,
                    format!("each needs a name of its own ({:?})", endpoint.name),
                );
            }
            let scheme = Url::parse(&endpoint.url).map(|u| u.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                return fail(key, format!("{}: url must be http(s)", endpoint.name));
            }
            if SigningKey::parse(endpoint.secret.expose_secret()).is_none() {
                return fail(
                    key,
                    format!("{}: secret must be whsec_ and base64", endpoint.name),
                );
            }
        }
        if self.notify.feed_retention_days == 0 {
            return fail("notify.feed_retention_days", "must be at least 1".into());
        }
        if self.cache.poll_ms == 0 {
            return fail("cache.poll_ms", "must be at least 1".into());
        }
        if (1..31).contains(&self.retention.events_days) {
            return fail(
                "retention.events_days",
                "must be 0 (for good) or at least 31: Stripe can send events of the last 30 days again".into(),
            );
        }
        if self.retention.check_every_ms == 0 {
            return fail("retention.check_every_ms", "must be at least 1".into());
        }
        if self.sweep.every_ms == 0 {
            return fail("sweep.every_ms", "must be at least 1".into());
        }
        if let Err(e) = Url::parse(&self.stripe.api_base) {
            return fail("stripe.api_base", format!("not a URL: {e}"));
        }
        let key = self.stripe.secret_key.expose_secret();
        let key_ok = ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
            .iter()
            .any(|p| key.starts_with(p));
        if !key.is_empty() && !key_ok {
            return fail(
                "stripe.secret_key",
                "must start with sk_test_, sk_live_, rk_test_ or rk_live_".into(),
            );
        }
        if self.stripe.tolerance_secs == 0 {
            return fail("stripe.tolerance_secs", "must be at least 1".into());
        }
        if self
            .stripe
            .webhook_secrets
            .iter()
            .any(|s| s.expose_secret().trim().is_empty())
        {
            return fail("stripe.webhook_secrets", "contains an empty secret".into());
        }
        self.validate_checkout()?;
        self.validate_tokens()?;
        Catalog::new(&self.plans).map_err(|e| SettingsError(e.to_string()))?;
        if environment == "production" {
            self.validate_production()?;
        } else if self.livemode() {
            return fail(
                "stripe.secret_key",
                format!(
                    "a live key is only accepted with BILLING_ENV=production (now {environment:?})"
                ),
            );
        }
        if self.stripe.sync_mode == super::SyncMode::Refetch && key.is_empty() {
            return fail(
                "stripe.sync_mode",
                "refetch reads from Stripe and needs stripe.secret_key".into(),
            );
        }
        Ok(())
    }

    fn validate_checkout(&self) -> Result<(), SettingsError> {
        for (i, origin) in self.checkout.allowed_redirect_origins.iter().enumerate() {
            let parsed = Url::parse(origin).map_err(|e| {
                SettingsError(format!(
                    "checkout.allowed_redirect_origins[{i}]: not a URL: {e}"
                ))
            })?;
            if parsed.origin().ascii_serialization() != origin.trim_end_matches('/') {
                return Err(SettingsError(format!(
                    "checkout.allowed_redirect_origins[{i}]: {origin:?} must be an origin such as https://app.example.com"
                )));
            }
        }
        for (key, url) in [
            ("checkout.success_url", &self.checkout.success_url),
            ("checkout.cancel_url", &self.checkout.cancel_url),
        ] {
            if !self.redirect_allowed(url) {
                return Err(SettingsError(format!(
                    "{key}: {url:?} is not a URL on an origin in checkout.allowed_redirect_origins"
                )));
            }
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<(), SettingsError> {
        let mut seen = std::collections::HashSet::new();
        for (i, token) in self.auth.tokens.iter().enumerate() {
            let secret = token.token.expose_secret();
            if secret.trim().is_empty() {
                return Err(SettingsError(format!("auth.tokens[{i}].token: is empty")));
            }
            if !seen.insert(secret.to_owned()) {
                return Err(SettingsError(format!(
                    "auth.tokens[{i}].token: is also used by another token"
                )));
            }
            if token.scopes.is_empty() {
                return Err(SettingsError(format!(
                    "auth.tokens[{i}].scopes: names no scope"
                )));
            }
        }
        Ok(())
    }

    fn validate_production(&self) -> Result<(), SettingsError> {
        let defaults: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError(format!("built-in defaults: {e}")))?;
        let dev_secrets: Vec<&str> = defaults
            .stripe
            .webhook_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        let dev_tokens: Vec<&str> = defaults
            .auth
            .tokens
            .iter()
            .map(|t| t.token.expose_secret())
            .collect();
        if self.stripe.secret_key.expose_secret().is_empty() {
            return Err(SettingsError(
                "stripe.secret_key: required in production (STRIPE_SECRET_KEY)".into(),
            ));
        }
        if self.stripe.webhook_secrets.is_empty() {
            return Err(SettingsError(
                "stripe.webhook_secrets: required in production (STRIPE_WEBHOOK_SECRET)".into(),
            ));
        }
        if self
            .stripe
            .webhook_secrets
            .iter()
            .any(|s| dev_secrets.contains(&s.expose_secret()))
        {
            return Err(SettingsError(
                "stripe.webhook_secrets: the development secret is refused in production".into(),
            ));
        }
        for (i, token) in self.auth.tokens.iter().enumerate() {
            if dev_tokens.contains(&token.token.expose_secret()) {
                return Err(SettingsError(format!(
                    "auth.tokens[{i}].token: the development token is refused in production"
                )));
            }
        }
        if self.auth.tokens.is_empty() {
            return Err(SettingsError(
                "auth.tokens: production needs at least one token".into(),
            ));
        }
        Ok(())
    }
}
