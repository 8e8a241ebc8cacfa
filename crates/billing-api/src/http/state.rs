//! What every handler shares, and the one way handlers reach the engine.

use std::sync::Arc;

use actix_web::web;
use entitlements::Engine;

use crate::cache::AnswerCache;
use crate::http::auth::Tokens;
use crate::http::error::ApiError;
use crate::http::throttle::Throttle;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::stripe::api::StripeApi;
use crate::stripe::signature::Verifier;

/// What every handler shares.
pub struct AppState {
    /// The domain service.
    pub engine: Engine,
    /// `None` when no Stripe key is configured.
    pub stripe: Option<StripeApi>,
    /// Webhook signature checks.
    pub verifier: Verifier,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Failed token attempts per address.
    pub throttle: Throttle,
    /// The settings the service started with.
    pub settings: Settings,
    /// Request, webhook and Stripe call counts.
    pub metrics: Arc<Metrics>,
    /// The OpenAPI document, built once: it depends on the settings and
    /// the catalog alone.
    pub openapi: web::Bytes,
    /// The hot path's answers in memory.
    pub cache: Arc<AnswerCache>,
    /// A multi-threaded runtime that database work runs on.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl AppState {
    /// Runs `work` with the engine as a task of its own on the
    /// multi-threaded runtime. A request that is dropped (its client went
    /// away) thus never cancels a transaction half-way, and SQLite's
    /// blocking calls never run on an HTTP worker's own runtime.
    pub async fn with_engine<T, F>(&self, work: impl FnOnce(Engine) -> F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, entitlements::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.runtime.spawn(work(self.engine.clone()));
        Ok(task
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??)
    }
}
