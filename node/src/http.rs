//! A deliberately tiny HTTP/1.1 server for the node's read-only web
//! surfaces (the metrics endpoint and the explorer): `GET` only, one request
//! per connection, and every resource bounded so that a hostile client costs
//! itself, not the node.
//!
//! Bounds (per server): at most `max_connections` connections at once (the
//! rest wait in the kernel's accept queue), a request head of at most
//! [`MAX_REQUEST_BYTES`], and [`REQUEST_TIMEOUT`] for reading the request and
//! writing the answer. What one answer may hold is the handler's bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Largest request head read (request line and headers); a longer one is
/// answered 431 and dropped.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time for one whole exchange: a client that trickles its request or never
/// reads the answer loses its connection after this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status line after the version, e.g. `200 OK`.
    pub status: &'static str,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 answer.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: "200 OK",
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text answer with `status`.
    pub fn text(status: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// What answers a `GET` for a path (with its query string).
pub type Handler =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Serves `handler` on `listener` until `shutdown` becomes true, with at
/// most `max_connections` exchanges at once.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let h = handler.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, exchange(stream, &h)).await;
            drop(permit);
        });
    }
}

/// Reads one request head, answers it, closes.
async fn exchange(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            let r = Response::text("431 Request Header Fields Too Large", "too large\n");
            return write(&mut stream, &r).await;
        }
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if method == "GET" {
        handler(path.to_string()).await
    } else {
        Response::text("405 Method Not Allowed", "GET only\n")
    };
    write(&mut stream, &response).await
}

async fn write(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&r.body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn answers_get_refuses_other_methods_and_oversized_heads() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let handler: Handler = Arc::new(|path: String| {
            Box::pin(async move { Response::ok("text/plain", format!("you asked {path}")) })
        });
        let task = tokio::spawn(serve(l, handler, 4, rx));

        let r = get(addr, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("you asked /a?b=1"), "{r}");
        let r = get(addr, b"POST /a HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let mut big = b"GET /".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES + 10));
        let r = get(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");

        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server stops when told")
            .unwrap();
    }
}
