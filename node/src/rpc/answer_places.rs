//! Places for the requests being answered, held until each answer has been
//! *sent*, not only built.
//!
//! tower's concurrency limits free their place when the handler's future
//! completes, but the answer (up to a block, or a range of blocks) then
//! waits in hyper's and h2's buffers until the client's flow-control window
//! lets it out. A client that asks and never reads (a stream window of a
//! few bytes) left every answer it asked for in the node's memory: with
//! `max_streams_per_connection` × `max_connections` streams open that was
//! 16,384 answers, not the `max_requests` (512) the memory bound counts.
//! `GetBlocks`' own places were freed after the read the same way: the
//! attack case `grpc_unread_answers` held 172 ranges of up to 8 MiB at once
//! against a limit of 4 (now 4, the other 2,044 refused).
//!
//! So the place is moved into the answer's body ([`HeldBody`]) and freed
//! when hyper drops it: after the last frame was handed to h2, or when the
//! stream or the connection ends. That alone is not enough: hyper hands a
//! data frame to h2 as soon as the stream has one byte of window, and h2
//! buffers all of it, so a whole answer (tonic encodes a message as one
//! frame) left the body at once and the body ended, while its bytes still
//! waited. The body therefore hands its data out in pieces of at most
//! [`PIECE`]: hyper asks for the next piece only once h2 has sent the one
//! before, so the body (and its place) lives until all but the last piece
//! is on the wire. Splitting a `Bytes` copies nothing. A handler that takes
//! a place of its own (a block range) puts it in the answer's extensions as
//! a [`HeldPlace`], and it is held the same way. Over the limit a request
//! is refused at once with UNAVAILABLE, never queued.
//!
//! A client that never reads keeps the places it got until its connection
//! ends, which the server makes happen once an answer has waited on it for
//! `stalled_answer` (`stalls`; before session 46 a client that answered
//! the server's pings kept them for good). Meanwhile it costs the node no
//! more memory than the bound counts, but one address could hold every
//! place and leave the others refused, so a client address holds at most
//! `max_requests_per_ip` of them (a quarter by default): the rest stay for
//! everyone else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

use super::client_addr::{AddressShares, ClientAddr, client_socket};
use super::limits::MAX_SMALL_ANSWER;
use super::place_pool::{PlacePool, PoolPlace};
use super::stalls::{StallBook, StallMark};
use crate::metrics::{GrpcRefusal, Metrics};

/// A handler's own place, carried in its answer's extensions so that it is
/// held until the answer is sent (cloneable only because extensions must
/// be; every clone shares the one place).
#[derive(Debug, Clone)]
pub struct HeldPlace {
    _place: Arc<PoolPlace>,
}

impl HeldPlace {
    /// Puts `place` in `response`'s extensions.
    pub fn attach<T>(response: &mut tonic::Response<T>, place: PoolPlace) {
        response.extensions_mut().insert(Self {
            _place: Arc::new(place),
        });
    }
}

/// The most of an answer handed to hyper at once. Each open stream may
/// hold one piece in h2 after its body ended and its place was freed, so
/// this times the streams the server allows is a term of the memory bound
/// of its own (`memory.rs`); half h2's default frame size keeps it small
/// at no cost in frames worth counting (an 8 MiB range is 1,024 pieces).
pub const PIECE: usize = 8 * 1024;

/// Bytes gRPC puts before each message in a data frame (a compression flag
/// and a 4-byte length).
const GRPC_MESSAGE_PREFIX: usize = 5;

/// Everything one answer holds until it is sent.
struct Places {
    _request: PoolPlace,
    own: Option<HeldPlace>,
    /// The answer's record of waiting on its client (`stalls`); None for a
    /// request made in process.
    stall: Option<StallMark>,
}

/// An answer's body with the places it holds; they are freed when hyper
/// drops it.
pub struct HeldBody {
    inner: Body,
    /// What is left of the data frame being handed out in pieces.
    rest: bytes::Bytes,
    places: Option<Places>,
}

impl HeldBody {
    /// The answer's record of waiting on its client, if it has one.
    fn stall(&mut self) -> Option<&mut StallMark> {
        self.places.as_mut().and_then(|p| p.stall.as_mut())
    }

    fn holding(inner: Body, places: Places) -> Self {
        Self {
            inner,
            rest: bytes::Bytes::new(),
            places: Some(places),
        }
    }
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(mark) = this.stall() {
            mark.moving();
        }
        if this.rest.is_empty() {
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        // The memory bound counts an answer with no pool
                        // place of its own at `MAX_SMALL_ANSWER` at most.
                        debug_assert!(
                            this.places.as_ref().is_none_or(|p| p.own.is_some())
                                || data.len() <= MAX_SMALL_ANSWER + GRPC_MESSAGE_PREFIX,
                            "an answer of {} bytes holds no pool place",
                            data.len()
                        );
                        this.rest = data;
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
        }
        let piece = this.rest.split_to(this.rest.len().min(PIECE));
        debug_assert!(piece.len() <= PIECE);
        // hyper asks for the next piece once h2 has sent this one: until
        // then the answer waits on the client's window.
        if let Some(mark) = this.stall() {
            mark.waiting();
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// The layer giving each request a place of `max_requests`, at most
/// `max_requests_per_ip` of them to one client address.
#[derive(Clone)]
pub struct AnswerPlacesLayer {
    places: Arc<PlacePool>,
    metrics: Arc<Metrics>,
    stalls: Option<Arc<StallBook>>,
}

impl AnswerPlacesLayer {
    /// At most `max_requests` requests being answered or sent at once,
    /// `max_requests_per_ip` of them from one address.
    pub fn new(max_requests: usize, max_requests_per_ip: usize, metrics: Arc<Metrics>) -> Self {
        // UNAVAILABLE: load shedding, as tonic's own limits refuse.
        let places = PlacePool::with_share(
            max_requests,
            AddressShares::new(max_requests_per_ip),
            tonic::Code::Unavailable,
            (GrpcRefusal::Requests, GrpcRefusal::RequestsPerIp),
            "requests being answered",
        );
        Self {
            places: Arc::new(places),
            metrics,
            stalls: None,
        }
    }

    /// The same layer, recording in `book` (by connection) when each
    /// answer waits on its client.
    pub fn watching(mut self, book: Arc<StallBook>) -> Self {
        self.stalls = Some(book);
        self
    }
}

impl<S> tower::Layer<S> for AnswerPlacesLayer {
    type Service = AnswerPlaces<S>;

    fn layer(&self, inner: S) -> AnswerPlaces<S> {
        AnswerPlaces {
            inner,
            places: self.places.clone(),
            metrics: self.metrics.clone(),
            stalls: self.stalls.clone(),
        }
    }
}

/// The service [`AnswerPlacesLayer`] makes.
#[derive(Clone)]
pub struct AnswerPlaces<S> {
    inner: S,
    places: Arc<PlacePool>,
    metrics: Arc<Metrics>,
    stalls: Option<Arc<StallBook>>,
}

/// The future of an answer that got a place.
type Answer<E> = Pin<Box<dyn Future<Output = Result<http::Response<HeldBody>, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for AnswerPlaces<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<HeldBody>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // Every request the server hands on carries its connection info.
        let client = ClientAddr::of_request(request.extensions()).unwrap_or(ClientAddr::UNKNOWN);
        let place = match self.places.take(Some(client), &self.metrics) {
            Ok(place) => place,
            Err(refusal) => {
                let refusal = refusal.into_http::<HeldBody>();
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        };
        let mut stall = self.stalls.as_ref().and_then(|book| {
            let socket = client_socket(request.extensions())?;
            Some(book.of(socket)?.mark())
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            // Ready to go, so waiting until hyper asks for a piece (hyper
            // 1.12 asks at once and holds the piece until the client's
            // window has room; one that waited for room first would never
            // ask a client whose window stays 0).
            if let Some(mark) = &mut stall {
                mark.waiting();
            }
            let places = Places {
                _request: place,
                own: response.extensions_mut().remove::<HeldPlace>(),
                stall,
            };
            Ok(response.map(|body| HeldBody::holding(body, places)))
        })
    }
}

impl Default for HeldBody {
    /// The empty body of a refusal, holding nothing (what
    /// `Status::into_http` fills a refusal with).
    fn default() -> Self {
        Self {
            inner: Body::default(),
            rest: bytes::Bytes::new(),
            places: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use std::convert::Infallible;
    use tonic::transport::server::TcpConnectInfo;
    use tower::{Layer, Service};

    /// One data frame of `data`, then the gRPC trailers, as tonic's encoder
    /// gives a unary answer.
    struct OneMessage(Option<bytes::Bytes>, bool);

    impl http_body::Body for OneMessage {
        type Data = bytes::Bytes;
        type Error = Status;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
            let this = self.get_mut();
            if let Some(data) = this.0.take() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
            }
            if !this.1 {
                this.1 = true;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
            }
            Poll::Ready(None)
        }
    }

    /// A handler answering `len` bytes in one message, holding a place of
    /// `own` in its answer as `GetBlocks` does.
    #[derive(Clone)]
    struct Handler {
        len: usize,
        own: Arc<PlacePool>,
    }

    fn pool(places: usize) -> Arc<PlacePool> {
        Arc::new(PlacePool::new(
            places,
            GrpcRefusal::BlockRanges,
            GrpcRefusal::BlockRangesPerIp,
            "test answers",
        ))
    }

    impl tower::Service<http::Request<Body>> for Handler {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let data = bytes::Bytes::from(vec![7u8; self.len]);
            let mut answer = http::Response::new(Body::new(OneMessage(Some(data), false)));
            // What `HeldPlace::attach` puts in a tonic answer, which tonic
            // moves to the HTTP answer (the attack case covers that path).
            let client = ClientAddr::of_request(request.extensions());
            let place = self.own.take(client, &Metrics::new()).expect("own place");
            answer.extensions_mut().insert(HeldPlace {
                _place: Arc::new(place),
            });
            std::future::ready(Ok(answer))
        }
    }

    fn grpc_status(r: &http::Response<HeldBody>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    async fn next_frame(body: &mut HeldBody) -> Option<http_body::Frame<bytes::Bytes>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .map(|f| f.expect("frame"))
    }

    #[tokio::test]
    async fn a_place_is_held_until_the_answer_is_handed_out_and_the_excess_is_refused() {
        let metrics = Metrics::new();
        let layer = AnswerPlacesLayer::new(1, 8, metrics.clone());
        let own = pool(1);
        let len = 3 * PIECE + 5;
        let mut svc = layer.layer(Handler {
            len,
            own: own.clone(),
        });
        let request = || http::Request::new(Body::default());

        let first = svc.call(request()).await.expect("answer");
        assert_eq!(grpc_status(&first), None, "the first request is answered");
        assert_eq!(own.free(), 0, "the handler's place is held");

        // Over the limit while the first answer is unsent: refused at once.
        let refused = svc.call(request()).await.expect("refusal");
        assert_eq!(grpc_status(&refused), Some("14"), "UNAVAILABLE");
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::Requests), 1);

        // The answer comes out in pieces; both places stay taken until the
        // body is gone.
        let mut body = first.into_body();
        let mut sent = Vec::new();
        for _ in 0..4 {
            let frame = next_frame(&mut body).await.expect("a piece");
            let piece = frame.into_data().expect("data");
            assert!(piece.len() <= PIECE, "a piece of {} bytes", piece.len());
            sent.extend_from_slice(&piece);
            let refused = svc.call(request()).await.expect("refusal");
            assert_eq!(
                grpc_status(&refused),
                Some("14"),
                "the place was freed early"
            );
            assert_eq!(own.free(), 0);
        }
        assert_eq!(sent, vec![7u8; len], "the pieces are the answer, in order");
        let trailers = next_frame(&mut body).await.expect("trailers");
        assert!(trailers.is_trailers());
        assert!(next_frame(&mut body).await.is_none());
        drop(body);

        assert_eq!(own.free(), 1, "the handler's place is freed");
        let again = svc.call(request()).await.expect("answer");
        assert_eq!(grpc_status(&again), None, "the request place is freed");
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::Requests), 5);
    }

    /// A request as tonic hands it on, from a client at `ip`.
    fn from(ip: [u8; 4]) -> http::Request<Body> {
        let mut request = http::Request::new(Body::default());
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(std::net::SocketAddr::from((ip, 40_000))),
        });
        request
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_share_and_the_others_are_still_served() {
        let metrics = Metrics::new();
        let layer = AnswerPlacesLayer::new(4, 2, metrics.clone());
        let mut svc = layer.layer(Handler {
            len: 10,
            own: pool(8),
        });
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let a1 = svc.call(from(a)).await.expect("a1");
        let a2 = svc.call(from(a)).await.expect("a2");
        assert_eq!((grpc_status(&a1), grpc_status(&a2)), (None, None));
        // Unread, those two answers are all `a` may hold.
        let a3 = svc.call(from(a)).await.expect("refusal");
        assert_eq!(grpc_status(&a3), Some("14"));
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::RequestsPerIp), 1);
        // Another address still gets the places left.
        let b1 = svc.call(from(b)).await.expect("b1");
        let b2 = svc.call(from(b)).await.expect("b2");
        assert_eq!((grpc_status(&b1), grpc_status(&b2)), (None, None));
        // Now the total is full too: refused for it, whoever asks.
        drop(a3);
        let a4 = svc.call(from(a)).await.expect("refusal");
        assert_eq!(grpc_status(&a4), Some("14"));
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::RequestsPerIp), 2);
        // Sending an answer gives its address's place back.
        drop(a1);
        let a5 = svc.call(from(a)).await.expect("a5");
        assert_eq!(grpc_status(&a5), None);
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::Requests), 0);
        drop((a2, a5, b1));
        let c = svc.call(from([10, 0, 0, 3])).await.expect("c");
        assert_eq!(grpc_status(&c), None);
        drop((b2, c));
        assert_eq!(
            layer.places.clients(),
            0,
            "every address's places were given back"
        );
        assert_eq!(layer.places.free(), 4);

        // A refused request leaves no entry behind.
        let one = AnswerPlacesLayer::new(4, 1, metrics.clone());
        let mut svc = one.layer(Handler {
            len: 10,
            own: pool(8),
        });
        let _held = svc.call(from([10, 0, 1, 0])).await.expect("held");
        for _ in 0..3 {
            let refused = svc.call(from([10, 0, 1, 0])).await.expect("refusal");
            assert_eq!(grpc_status(&refused), Some("14"));
        }
        assert_eq!(one.places.clients(), 1);
    }
}
