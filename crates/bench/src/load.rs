//! Closed-loop GET load: each connection sends its next request as soon as
//! the previous one is answered, for a fixed time after a warm-up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::figures::{Figures, Latencies, gather};
use crate::http::{Call, Connection, authorization};

/// GETs `paths` (each connection walks them from its own offset) with
/// `connections` connections for `duration`, after `warmup`.
pub async fn hammer(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    token: Option<String>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Figures, String> {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::new();
    for n in 0..connections {
        let (paths, token) = (paths.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await?;
            let bearer = token.map(|t| format!("Bearer {t}"));
            let headers = authorization(bearer.as_deref());
            let mut latencies = Latencies::default();
            let mut errors = 0;
            let mut i = n * 7919;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let call = Call {
                    method: "GET",
                    path: &paths[i % paths.len()],
                    headers: &headers,
                    body: Bytes::new(),
                };
                i += 1;
                let ok = matches!(conn.send(&call).await, Ok((200, _)));
                if sent >= start {
                    latencies.record(sent.elapsed());
                    errors += u64::from(!ok);
                }
                if !ok {
                    conn = Connection::open(addr).await?;
                }
            }
            Ok::<_, String>((latencies, errors))
        }));
    }
    let (all, errors) = gather(tasks).await?;
    Ok(all.figures(duration, errors))
}
