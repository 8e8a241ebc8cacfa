//! A TCP proxy in front of PostgreSQL that can stop passing its
//! asynchronous notifications on while every query still works, as a
//! transaction-pooling PgBouncer does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; it stops when the test's runtime ends.
pub struct PgProxy {
    /// The database's URL through the proxy.
    pub url: String,
    dropping: Arc<AtomicBool>,
}

impl PgProxy {
    /// Starts a proxy to the server `url` names (`postgres://user@host:port/db`).
    pub async fn start(url: &str) -> PgProxy {
        let (user, rest) = url.split_once('@').expect("the URL names its user");
        let (server, database) = rest.split_once('/').expect("the URL names its database");
        let server = server.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dropping = Arc::new(AtomicBool::new(false));
        let drops = dropping.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&server).await.unwrap();
                tokio::spawn(pass(client, server, drops.clone()));
            }
        });
        PgProxy {
            url: format!("{user}@127.0.0.1:{port}/{database}"),
            dropping,
        }
    }

    /// From now on no notification reaches any client.
    pub fn drop_notifications(&self) {
        self.dropping.store(true, Ordering::SeqCst);
    }
}

/// Copies the client's bytes as they are and the server's message by
/// message (a type byte, then a length that counts itself), leaving out
/// `NotificationResponse` (`A`) while `dropping`.
async fn pass(client: TcpStream, server: TcpStream, dropping: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
    let mut head = [0u8; 5];
    while server_read.read_exact(&mut head).await.is_ok() {
        let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; length.saturating_sub(4)];
        if server_read.read_exact(&mut body).await.is_err() {
            return;
        }
        if head[0] == b'A' && dropping.load(Ordering::SeqCst) {
            continue;
        }
        if client_write.write_all(&head).await.is_err()
            || client_write.write_all(&body).await.is_err()
        {
            return;
        }
    }
}
