//! Builds the application from settings: pool, migrations, routes, listener.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware;
use actix_web::{App, HttpServer, web};
use entitlements::Engine;
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use std::time::Duration;

use crate::background::Background;
use crate::cache::AnswerCache;
use crate::http::AppState;
use crate::http::auth::Tokens;
use crate::http::routes;
use crate::http::throttle::Throttle;
use crate::metrics::Metrics;
use crate::settings::{Settings, SyncMode};
use crate::stripe::api::StripeApi;
use crate::stripe::refetch::Refetcher;
use crate::stripe::signature::Verifier;

/// A bound, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    background: Background,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] entitlements::Error),
    /// The Stripe client could not be built.
    #[error(transparent)]
    Stripe(#[from] crate::stripe::api::StripeFailure),
    /// The OpenAPI document could not be built.
    #[error("cannot build the OpenAPI document: {0}")]
    OpenApi(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `host:port`.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Application {
    /// Opens the database, applies migrations and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let mut engine = settings.engine()?;
        let applied = engine.database().migrate().await?;
        if applied > 0 {
            tracing::info!(applied, "migrations applied");
        }
        // The replica that starts last decides the rules answers follow.
        engine.activate_rules().await?;
        let recorded = engine.record_missing_terms().await?;
        if recorded > 0 {
            tracing::info!(recorded, "purchases recorded without terms given today's");
        }
        let metrics = Arc::new(Metrics::default());
        let stripe = match settings.stripe.secret_key.expose_secret() {
            "" => None,
            key => Some(
                StripeApi::new(key, &settings.stripe.api_base, metrics.clone())?
                    .with_rate_limit(settings.stripe.requests_per_second),
            ),
        };
        if let (SyncMode::Refetch, Some(api)) = (settings.stripe.sync_mode, &stripe) {
            let window = Duration::from_millis(settings.stripe.refetch_window_ms);
            engine = engine.with_source(Arc::new(Refetcher::new(api.clone(), window)));
        }
        let cache = Arc::new(AnswerCache::new(settings.cache.max_orgs));
        let invalidate = cache.clone();
        engine = engine.with_change_hook(Arc::new(move |org, version| {
            invalidate.invalidate(org, version);
        }));
        for endpoint in &settings.notify.endpoints {
            engine.notify_start(&endpoint.name).await?;
        }
        let background = Background::start(&engine, stripe.as_ref(), &settings, &cache, &metrics);
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener =
            TcpListener::bind(&address).map_err(|source| StartError::Bind { address, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                address: "?".into(),
                source,
            })?
            .port();
        let workers = settings.server.workers;
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let openapi = crate::http::openapi::build(&settings, engine.catalog())
            .map_err(|e| StartError::OpenApi(e.to_string()))?
            .into();
        let state = web::Data::new(AppState {
            engine,
            stripe,
            verifier: Verifier::new(
                settings.stripe.webhook_secrets.clone(),
                settings.stripe.tolerance_secs,
            ),
            tokens: Tokens::new(&settings.auth.tokens),
            throttle: Throttle::new(
                settings.auth.failed_tokens_per_minute,
                settings.auth.trust_forwarded_for,
            ),
            settings,
            runtime: tokio::runtime::Handle::current(),
            metrics,
            openapi,
            cache,
        });
        let shared = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(
                    crate::http::count_request::count_request,
                ))
                .wrap(TracingLogger::default())
                .app_data(shared.clone())
                .app_data(web::JsonConfig::default().error_handler(routes::json_error))
                .app_data(web::QueryConfig::default().error_handler(routes::query_error))
                .configure(crate::http::admin::configure)
                .configure(routes::configure)
                .configure(crate::http::openapi::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(|source| StartError::Bind {
            address: format!("port {port}"),
            source,
        })?;
        // Signals are ours (see `run_until_signalled`): actix would stop
        // at once on SIGINT.
        server = server.disable_signals().shutdown_timeout(shutdown_timeout);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            state,
            background,
        })
    }

    /// The port the service listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The domain service the app runs (a clone sharing its counters).
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Stops the server (and with it the background tasks) when told to.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the process is asked to stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.background.stop();
        served
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets requests
    /// in flight finish (within `server.shutdown_timeout_secs`) and closes
    /// the database pool.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(signal, "shutting down: finishing requests in flight");
            handle.stop(true).await;
        });
        self.server.await?;
        self.background.stop();
        self.state.engine.database().close();
        tracing::info!("stopped");
        Ok(())
    }
}

/// `billing-api serve`: logs, builds the service and serves until a
/// signal stops it.
pub async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    crate::telemetry::init(&settings.log);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_signalled().await?;
    Ok(())
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; stop the process to stop serving");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
