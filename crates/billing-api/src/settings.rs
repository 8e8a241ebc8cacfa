//! Typed configuration, layered: the built-in `config/default.toml`, then
//! `config/<BILLING_ENV>.toml`, then `--config`/`BILLING_CONFIG`, then the
//! conventional variables (`DATABASE_URL`, `STRIPE_SECRET_KEY`,
//! `STRIPE_WEBHOOK_SECRET`, `PORT`), then `BILLING__<SECTION>__<KEY>`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use entitlements::{Catalog, DatabaseOptions, PlanConfig, Policy};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::auth::Scope;

/// The development defaults, compiled in so the binary runs anywhere.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// All settings of the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where to listen.
    pub server: ServerSettings,
    /// Where the data lives.
    pub database: DatabaseSettings,
    /// How to reach and trust Stripe.
    pub stripe: StripeSettings,
    /// Checkout redirect defaults and the allowed origins.
    pub checkout: CheckoutSettings,
    /// Logging.
    pub log: LogSettings,
    /// Bearer tokens for `/v1`.
    pub auth: AuthSettings,
    /// The plan catalog.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// HTTP worker threads; defaults to the number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://...`.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: usize,
    /// How long to wait for a connection before answering 503.
    pub acquire_timeout_secs: u64,
}

/// `[stripe]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// API key; empty disables the routes that call Stripe.
    pub secret_key: SecretString,
    /// Webhook signing secrets; several allow rotation without downtime.
    pub webhook_secrets: Vec<SecretString>,
    /// Stripe's API, or stripe-mock or a test server.
    pub api_base: String,
    /// Largest accepted age of a webhook signature, in seconds.
    pub tolerance_secs: u64,
    /// Where subscription state comes from.
    pub sync_mode: SyncMode,
    /// How long a past-due subscription keeps access.
    pub past_due_grace_days: u32,
}

/// Where subscription state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The webhook payload itself.
    Payload,
}

/// `[checkout]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSettings {
    /// Where Stripe sends the browser after payment, unless the request says.
    pub success_url: String,
    /// Where Stripe sends the browser on cancel, unless the request says.
    pub cancel_url: String,
    /// Origins (`scheme://host[:port]`) redirect URLs may point to.
    pub allowed_redirect_origins: Vec<String>,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `billing_api=debug,info`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Accepted bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenSettings>,
}

/// `[[auth.tokens]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who uses the token, for logs.
    pub name: String,
    /// The secret itself.
    pub token: SecretString,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(pub String);

/// Where settings come from: the files and the environment to read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The folder holding `<environment>.toml` overlays.
    pub config_dir: PathBuf,
    /// `BILLING_ENV`: `development` unless set.
    pub environment: String,
    /// `--config` or `BILLING_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// Environment variables.
    pub vars: HashMap<String, String>,
}

impl Sources {
    /// Reads the process environment; `config_file` is the `--config` flag.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self {
            config_dir: vars
                .get("BILLING_CONFIG_DIR")
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            environment: vars
                .get("BILLING_ENV")
                .cloned()
                .unwrap_or_else(|| "development".into()),
            config_file: config_file.or_else(|| vars.get("BILLING_CONFIG").map(PathBuf::from)),
            vars,
        }
    }
}

impl Settings {
    /// Loads and validates settings from `sources`.
    pub fn load(sources: &Sources) -> Result<Self, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        let overlay = sources
            .config_dir
            .join(format!("{}.toml", sources.environment));
        if overlay.is_file() {
            builder = builder.add_source(File::from(overlay).format(FileFormat::Toml));
        } else if sources.environment != "development" {
            return Err(SettingsError(format!(
                "BILLING_ENV={}: {} does not exist",
                sources.environment,
                overlay.display()
            )));
        }
        if let Some(file) = &sources.config_file {
            builder = builder.add_source(
                File::from(file.clone())
                    .format(FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            Environment::with_prefix("BILLING")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("stripe.webhook_secrets")
                .with_list_parse_key("checkout.allowed_redirect_origins")
                .source(Some(sources.vars.clone())),
        );
        let var = |name: &str| sources.vars.get(name).filter(|v| !v.is_empty()).cloned();
        let secrets = var("STRIPE_WEBHOOK_SECRET").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
        let port = match var("PORT") {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| SettingsError(format!("PORT: {p:?} is not a port number")))?,
            ),
            None => None,
        };
        let settings: Settings = builder
            .set_override_option("database.url", var("DATABASE_URL"))
            .and_then(|b| b.set_override_option("stripe.secret_key", var("STRIPE_SECRET_KEY")))
            .and_then(|b| b.set_override_option("stripe.webhook_secrets", secrets))
            .and_then(|b| b.set_override_option("server.port", port))
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError(e.to_string()))?;
        settings.validate(&sources.environment)?;
        Ok(settings)
    }

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

    /// Whether the Stripe key is a live-mode key.
    pub fn livemode(&self) -> bool {
        let key = self.stripe.secret_key.expose_secret();
        key.starts_with("sk_live_") || key.starts_with("rk_live_")
    }

    /// Whether `url` is an absolute URL on an allowed origin.
    pub fn redirect_allowed(&self, url: &str) -> bool {
        let Ok(parsed) = Url::parse(url) else {
            return false;
        };
        let origin = parsed.origin().ascii_serialization();
        self.checkout
            .allowed_redirect_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin)
    }

    /// The validated plan catalog.
    pub fn catalog(&self) -> Result<Catalog, SettingsError> {
        Catalog::new(&self.plans).map_err(|e| SettingsError(e.to_string()))
    }

    /// The pool options for the database.
    pub fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions {
            url: self.database.url.expose_secret().to_owned(),
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_secs(self.database.acquire_timeout_secs),
        }
    }

    /// The entitlement rules that are configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            past_due_grace_secs: i64::from(self.stripe.past_due_grace_days) * 86_400,
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(error(&sources(&[("DATABASE_URL", "mysql://x")])).contains("database.url"));
        assert!(
            error(&sources(&[("STRIPE_SECRET_KEY", "pk_test_1")])).contains("stripe.secret_key")
        );
        assert!(error(&sources(&[("PORT", "http")])).contains("PORT"));
        assert!(
            error(&sources(&[("BILLING__STRIPE__SYNC_MODE", "sometimes")])).contains("sync_mode")
        );
        let live = error(&sources(&[("STRIPE_SECRET_KEY", "sk_live_1")]));
        assert!(live.contains("stripe.secret_key: a live key"), "{live}");
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
    fn redirects_must_stay_on_allowed_origins() {
        let settings = Settings::load(&sources(&[])).unwrap();
        assert!(settings.redirect_allowed("http://localhost:3000/anything?x=1"));
        assert!(!settings.redirect_allowed("http://localhost:3001/"));
        assert!(!settings.redirect_allowed("https://evil.example/http://localhost:3000"));
        assert!(!settings.redirect_allowed("/relative"));
    }
}
