//! Ingest while a notification endpoint is down: the service's sender
//! tries it, fails and records every failure the whole time, and ingest
//! must not slow down for it.

use std::net::SocketAddr;
use std::path::Path;

use billing_api::settings::Settings;

use crate::figures::Figures;
use crate::ingest;
use crate::service::{Service, Store};

/// Ingest at each concurrency on a fresh service that notifies an
/// endpoint refusing every connection; returns the figures, then what the
/// checks found (that every event was applied, and that the sender was
/// failing all along).
pub async fn ingest(
    binary: &Path,
    store: &Store,
    settings: &Settings,
    token: &str,
    subscriptions: usize,
    concurrencies: &[usize],
) -> Result<(Vec<(usize, Figures)>, Vec<String>), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("endpoint-down.toml");
    std::fs::write(&config, endpoint_config(closed_port()?)).map_err(|e| e.to_string())?;
    let vars = [("BILLING_CONFIG", config.display().to_string())];
    let service = Service::start(binary, store, &vars).await?;
    let result = ingest_on(service.addr, settings, token, subscriptions, concurrencies).await;
    service.stop().await;
    result
}

async fn ingest_on(
    addr: SocketAddr,
    settings: &Settings,
    token: &str,
    subscriptions: usize,
    concurrencies: &[usize],
) -> Result<(Vec<(usize, Figures)>, Vec<String>), String> {
    let (mut figures, mut checks) = (Vec::new(), Vec::new());
    let mut counts = (0, 0);
    for &concurrency in concurrencies {
        eprintln!("  ingest at {concurrency} concurrent deliveries, an endpoint down");
        let load = ("ingest-endpoint-down", subscriptions, concurrency);
        let (measured, check) = ingest::measure(addr, settings, token, load, &mut counts).await?;
        figures.push((concurrency, measured));
        checks.push(check);
    }
    let failed = ingest::metric(
        addr,
        "billing_notify_messages_total{endpoint=\"down\",result=\"failed\"}",
    )
    .await?;
    checks.push(if failed > 0 {
        format!("with an endpoint down: {failed} notifications failed and were recorded meanwhile")
    } else {
        "FAILED with an endpoint down: the sender recorded no failure, so it was not measured"
            .to_owned()
    });
    Ok((figures, checks))
}

fn endpoint_config(port: u16) -> String {
    format!(
        "[[notify.endpoints]]\nname = \"down\"\nurl = \"http://127.0.0.1:{port}/hooks\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
    )
}

/// A port nothing listens on: one the system just handed out and took back.
fn closed_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
