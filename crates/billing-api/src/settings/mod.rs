//! Typed configuration, layered, later wins: the built-in
//! `config/default.toml`, then `config/<BILLING_ENV>.toml`, then
//! `--config`/`BILLING_CONFIG`, then `BILLING__<SECTION>__<KEY>`, then the
//! conventional variables (`DATABASE_URL`, `STRIPE_SECRET_KEY`,
//! `STRIPE_WEBHOOK_SECRET`, `PORT`). Shared by every room of the crate,
//! it imports none of them: what a setting is checked against at load
//! (token scopes, notification signing keys) lives here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use entitlements::{Catalog, Database, DatabaseOptions, Engine, PlanConfig, Policy};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod scope;
mod signing_key;
mod validate;

pub use scope::Scope;
pub use signing_key::SigningKey;

/// The development defaults, compiled in so the binary runs anywhere.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/default.toml");

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
    /// The in-memory answers of the hot path.
    pub cache: CacheSettings,
    /// How internal services learn of changes.
    pub notify: NotifySettings,
    /// Applying what time alone changes.
    pub sweep: SweepSettings,
    /// How long changes and events are kept.
    pub retention: RetentionSettings,
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
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    pub shutdown_timeout_secs: u64,
    /// How long a webhook's body may take to arrive once its headers
    /// have (a client holding a connection open is answered 408).
    pub body_timeout_ms: u64,
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Most organizations whose answer is kept in memory; 0 turns the
    /// cache off.
    pub max_orgs: usize,
    /// On SQLite, how often other processes' changes are looked for.
    pub poll_ms: u64,
}

/// `[sweep]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    /// How often answers that time alone changed (a grant or pass
    /// expired, a grace or last period ended) are looked for and applied.
    pub every_ms: u64,
}

/// `[retention]`: how long what is recorded is kept, in days; 0: for good.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Entitlement changes: the change feed and organizations' history
    /// (the feed's newest change is always kept).
    pub changes_days: u32,
    /// Received webhook events, their payloads with them; at least 31
    /// (Stripe keeps events 30 days and can send any of them again).
    pub events_days: u32,
    /// How often the sweeper looks for what is past its retention.
    pub check_every_ms: u64,
}

impl RetentionSettings {
    /// The retention as the engine takes it.
    pub fn retention(&self) -> entitlements::Retention {
        let secs = |days: u32| (days > 0).then(|| i64::from(days) * 86_400);
        entitlements::Retention {
            changes_secs: secs(self.changes_days),
            events_secs: secs(self.events_days),
        }
    }
}

/// `[notify]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// How far back a reader of the change feed without a cursor starts,
    /// in days (a cursor reaches back as far as changes are kept).
    pub feed_retention_days: u32,
    /// The longest a feed request may wait for a change (`wait`), in
    /// seconds; at most 30.
    pub max_wait_secs: u64,
    /// How long a notification may take before it counts as failed.
    pub timeout_secs: u64,
    /// How long a notification is retried before it is given up.
    pub give_up_after_secs: u64,
    /// Where changes are sent.
    #[serde(default)]
    pub endpoints: Vec<EndpointSettings>,
}

/// `[[notify.endpoints]]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Names the endpoint in metrics, logs and the history.
    pub name: String,
    /// Where notifications are posted.
    pub url: String,
    /// `whsec_<base64>`: signs them (Standard Webhooks).
    pub secret: SecretString,
}

impl std::fmt::Debug for EndpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSettings")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
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
    /// The most webhook deliveries applied in one transaction (group
    /// commit); 1 gives each its own.
    pub max_batch: usize,
    /// PostgreSQL: the longest a statement may run; everywhere, the longest
    /// a webhook waits for its transaction before it is answered 503.
    pub statement_timeout_ms: u64,
    /// PostgreSQL: the longest a statement waits for a row lock.
    pub lock_timeout_ms: u64,
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
    /// In refetch mode, how long a read waits for more events of the same
    /// subscription to share it.
    pub refetch_window_ms: u64,
    /// How long a past-due subscription keeps access.
    pub past_due_grace_days: u32,
    /// How often `serve` reconciles with Stripe; 0 never.
    pub reconcile_every_secs: u64,
    /// Most calls to Stripe a second; 0: Stripe's limit for the key (100
    /// live, 25 in test mode).
    pub requests_per_second: u32,
    /// Metadata keys an organization's id is read from, the first found
    /// winning.
    pub org_id_keys: Vec<String>,
}

/// Where subscription state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The webhook payload itself; needs no network (development).
    Payload,
    /// The subscription as Stripe's API returns it when the event arrives
    /// (production).
    Refetch,
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
    /// How long a sign-in to the admin console lasts, in seconds.
    pub admin_session_secs: u64,
    /// Whether the console's cookie is always `Secure` (sent over HTTPS
    /// only); when false, only when the request came over HTTPS (as its
    /// proxy's `X-Forwarded-Proto` says). On in production.
    #[serde(default)]
    pub secure_cookie: bool,
    /// Unknown tokens an address may present a minute (in a burst of as
    /// many) before its attempts are refused with 429 for a while; 0: no
    /// limit.
    pub failed_tokens_per_minute: u32,
    /// Whether the address a proxy names (`Forwarded`, `X-Forwarded-For`)
    /// is the client's; only behind a proxy that sets it.
    #[serde(default)]
    pub trust_forwarded_for: bool,
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

    /// Whether the Stripe key is a live-mode key.
    pub fn livemode(&self) -> bool {
        let key = self.stripe.secret_key.expose_secret();
        key.starts_with("sk_live_") || key.starts_with("rk_live_")
    }

    /// Whether `url` may be a Checkout or portal redirect: an allowed
    /// origin, then nothing or a path, query or fragment of printable ASCII
    /// (no spaces, no user info: no open redirect). The same rule as
    /// [`Settings::redirect_pattern`].
    pub fn redirect_allowed(&self, url: &str) -> bool {
        self.checkout.allowed_redirect_origins.iter().any(|origin| {
            url.strip_prefix(origin.trim_end_matches('/'))
                .is_some_and(|rest| {
                    (rest.is_empty() || rest.starts_with(['/', '?', '#']))
                        && rest.bytes().all(|b| b.is_ascii_graphic())
                })
        })
    }

    /// [`Settings::redirect_allowed`] as a regular expression, for the API
    /// description.
    pub fn redirect_pattern(&self) -> String {
        let origins: Vec<String> = self
            .checkout
            .allowed_redirect_origins
            .iter()
            .map(|origin| regex_escape(origin.trim_end_matches('/')))
            .collect();
        format!(r"^(?:{})(?:[/?#][\x21-\x7E]*)?$", origins.join("|"))
    }

    /// Opens the database and builds the domain service these settings
    /// describe (migrations are the caller's to apply).
    pub fn engine(&self) -> Result<Engine, entitlements::Error> {
        let db = Database::connect(&self.database_options())?;
        let catalog = std::sync::Arc::new(Catalog::new(&self.plans)?);
        Ok(Engine::new(db, catalog, self.policy(), self.livemode())
            .with_max_batch(self.database.max_batch)
            .with_org_id_keys(&self.stripe.org_id_keys))
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
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
            lock_timeout: Duration::from_millis(self.database.lock_timeout_ms),
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
mod tests;

/// `text` with every regular-expression metacharacter escaped.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `url` without its user info, query and fragment, to be logged or
/// shown: they may hold credentials.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}
