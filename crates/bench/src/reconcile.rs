//! `billing-api reconcile` against a fake Stripe serving many pages of
//! subscriptions: once at Stripe's test-mode rate limit, once unlimited
//! (what the service alone can apply).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use billing_api::settings::Settings;
use billing_api::stripe::trigger::{TriggerSpec, build_event};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Subscriptions a page holds, as Stripe's largest page.
pub const PER_PAGE: usize = 100;

/// What one run of `reconcile` showed.
pub struct Reconciled {
    /// Pages read.
    pub pages: usize,
    /// Subscriptions applied.
    pub subscriptions: usize,
    /// Seconds the command took, start-up included.
    pub seconds: f64,
    /// The calls a second it was limited to (0: unlimited).
    pub limit: u32,
}

impl Reconciled {
    /// Subscriptions applied a second.
    pub fn per_sec(&self) -> f64 {
        self.subscriptions as f64 / self.seconds.max(1e-3)
    }
}

/// Runs `reconcile` of `pages` pages of new organizations (`<tag>-<page>-<n>`)
/// on the service's database, at most `limit` calls a second (0: the test
/// key's own limit); checks that each organization was granted.
pub async fn run(
    binary: &Path,
    database_url: &str,
    settings: &Settings,
    tag: &str,
    pages: usize,
    limit: u32,
) -> Result<Reconciled, String> {
    let template = template(settings)?;
    let stripe = serve(Arc::new(FakeStripe {
        template,
        tag: tag.to_owned(),
        pages,
    }))
    .await?;
    let started = Instant::now();
    let output = Command::new(binary)
        .arg("reconcile")
        .env("DATABASE_URL", database_url)
        .env("STRIPE_SECRET_KEY", "sk_test_bench")
        .env("BILLING__STRIPE__API_BASE", format!("http://{stripe}"))
        .env("BILLING__STRIPE__REQUESTS_PER_SECOND", limit.to_string())
        .env("BILLING__LOG__LEVEL", "warn")
        .env_remove("BILLING_ENV")
        .output()
        .map_err(|e| format!("cannot run reconcile: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    let subscriptions = pages * PER_PAGE;
    let expected =
        format!("{subscriptions} subscription(s) read; organizations: {subscriptions} granted");
    if !output.status.success() || !text.contains(&expected) {
        return Err(format!(
            "reconcile did not grant every organization: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(Reconciled {
        pages,
        subscriptions,
        seconds,
        limit,
    })
}

/// Pages of subscriptions of organizations `<tag>-<page>-<n>`.
struct FakeStripe {
    /// A subscription as Stripe lists it, of the organization `TEMPLATE`.
    template: String,
    tag: String,
    pages: usize,
}

impl FakeStripe {
    /// The page after the subscription `after` (the first without one).
    fn page(&self, after: Option<&str>) -> String {
        let prefix = format!("sub_trigger_{}-", self.tag);
        let number = after
            .and_then(|id| id.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|page| page.parse::<usize>().ok())
            .map_or(0, |page| page + 1);
        let subscriptions: Vec<String> = (0..PER_PAGE)
            .map(|n| {
                let org = format!("{}-{number}-{n}", self.tag);
                self.template.replace("TEMPLATE", &org)
            })
            .collect();
        format!(
            r#"{{"object":"list","url":"/v1/subscriptions","has_more":{},"data":[{}]}}"#,
            number + 1 < self.pages,
            subscriptions.join(",")
        )
    }
}

fn template(settings: &Settings) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let spec = TriggerSpec::new("customer.subscription.updated", "TEMPLATE", now);
    let event = build_event(settings, &spec).map_err(|e| e.to_string())?;
    Ok(event["data"]["object"].to_string())
}

/// Serves `stripe` on a free local port until the process ends.
async fn serve(stripe: Arc<FakeStripe>) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let stripe = stripe.clone();
            let answer = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let after = request.uri().query().and_then(|query| {
                    query
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("starting_after="))
                        .map(str::to_owned)
                });
                let body = stripe.page(after.as_deref());
                async move {
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .header("request-id", "req_bench")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default(),
                    )
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), answer));
        }
    });
    Ok(addr)
}
