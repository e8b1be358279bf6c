//! The web explorer: a page that shows the chain and checks every
//! certificate it shows with its own BLS implementation, and the JSON
//! gateway it reads (`/api/…`, see [`gateway`]).
//!
//! The page (`node/explorer/`: `static/index.html`, `static/style.css`, and
//! `dist/app.js`, bundled from its sources with @noble/curves by
//! `npm run build` there and committed) is compiled into the binary, so it
//! works with no internet. The node is not trusted by the page: it walks the
//! validator sets from the genesis file it fetched (and shows that file's
//! hash for the user to compare), hashes each header itself and verifies
//! each certificate against the set it derived.
//!
//! Hostile clients: the listener is the node's tiny HTTP server
//! ([`crate::http`]): `GET` only, [`MAX_CONNECTIONS`] exchanges at once, 8
//! KiB request heads, 10 s per exchange; every route calls the gRPC Query
//! service with its own limits, and lists are read a bounded number of pages.
//! One answer holds at most one block and its JSON, about
//! [`MAX_ANSWER_FACTOR`] × the largest block frame.

pub mod gateway;
mod json;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{self, Handler, Response};
use crate::rpc::NodeApi;
pub use gateway::Gateway;

/// Explorer exchanges served at once; more connections wait in the accept
/// queue. A browser opens about six per origin.
pub const MAX_CONNECTIONS: usize = 8;

/// Memory of one answer in units of the largest block frame: the decoded
/// block (×1), its encoded lists in hex (×2), its JSON fields with bytes in
/// hex (×2 for hex, ×1 for field names and outcomes).
pub const MAX_ANSWER_FACTOR: usize = 6;

const INDEX_HTML: &[u8] = include_bytes!("../../explorer/static/index.html");
const STYLE_CSS: &[u8] = include_bytes!("../../explorer/static/style.css");
const APP_JS: &[u8] = include_bytes!("../../explorer/dist/app.js");

/// Serves the explorer on `listener` until `shutdown` becomes true.
pub async fn serve<A: NodeApi>(
    listener: TcpListener,
    gateway: Arc<Gateway<A>>,
    shutdown: watch::Receiver<bool>,
) {
    let handler: Handler = Arc::new(move |target: String| {
        let g = gateway.clone();
        Box::pin(async move { answer(&g, &target).await })
    });
    http::serve(listener, handler, MAX_CONNECTIONS, shutdown).await
}

/// Answers one request target (path and query string).
async fn answer<A: NodeApi>(g: &Gateway<A>, target: &str) -> Response {
    let (path, params) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" | "/index.html" => Response::ok("text/html; charset=utf-8", INDEX_HTML),
        "/style.css" => Response::ok("text/css; charset=utf-8", STYLE_CSS),
        "/app.js" => Response::ok("text/javascript; charset=utf-8", APP_JS),
        "/api/genesis" => Response::ok("application/json", g.genesis().to_vec()),
        _ => match path.strip_prefix("/api/") {
            Some(route) => match g.answer(route, params).await {
                Ok(v) => Response::ok("application/json", v.to_string()),
                Err(f) => Response {
                    status: f.status,
                    content_type: "application/json",
                    body: serde_json::json!({ "error": f.message }).to_string().into(),
                },
            },
            None => Response::text("404 Not Found", "no such page; try /\n"),
        },
    }
}
