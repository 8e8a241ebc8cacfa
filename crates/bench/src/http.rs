//! A lean HTTP/1.1 client: one kept-alive connection per task, so that the
//! load tool costs the machine as little as possible next to the service.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

/// One connection to the service.
pub struct Connection(SendRequest<Full<Bytes>>);

/// A request to send.
pub struct Call<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path and query.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (empty for a GET).
    pub body: Bytes,
}

impl Connection {
    /// Opens a connection to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self(sender))
    }

    /// Sends `call` and reads the whole answer: its status and body.
    pub async fn send(&mut self, call: &Call<'_>) -> Result<(u16, Bytes), String> {
        let mut request = hyper::Request::builder()
            .method(call.method)
            .uri(call.path)
            .header("host", "127.0.0.1");
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(call.body.clone()))
            .map_err(|e| e.to_string())?;
        self.0.ready().await.map_err(|e| e.to_string())?;
        let response = self
            .0
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// One GET on a connection of its own.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Bytes), String> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers = authorization(bearer.as_deref());
    let call = Call {
        method: "GET",
        path,
        headers: &headers,
        body: Bytes::new(),
    };
    Connection::open(addr).await?.send(&call).await
}

/// The `Authorization` header for `bearer` (`Bearer ...`), if any.
pub fn authorization(bearer: Option<&str>) -> Vec<(&'static str, &str)> {
    bearer.map(|b| ("authorization", b)).into_iter().collect()
}
