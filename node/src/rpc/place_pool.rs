//! A pool of places for one kind of costly answer (block ranges, single
//! blocks and validator sets, certificate streams): at most so many at
//! once in total, and at most a quarter of them held by one client
//! ([`AddressShares::quarter_of`]).
//!
//! The share is what keeps one client from holding the pool: a place is
//! held until its answer is sent (`answer_places`), so without it a client
//! that asks and never reads keeps every place of the pool for as long as
//! its connection lives (answering the server's keep-alive pings keeps it
//! alive), and every other client is refused. With it, taking the whole
//! pool needs four networks (`client_addr`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};

use super::client_addr::{AddressPlace, AddressShares, ClientAddr};
use crate::metrics::{GrpcRefusal, Metrics};

/// Places for one kind of answer.
#[derive(Debug)]
pub struct PlacePool {
    total: Arc<Semaphore>,
    shares: Arc<AddressShares>,
    /// The status of a refusal.
    code: Code,
    /// Counted when every place is taken.
    full: GrpcRefusal,
    /// Counted when the client holds its share.
    share_full: GrpcRefusal,
    /// What the places are for, as a refusal names it ("block-range reads").
    what: &'static str,
}

/// One place of a pool, and its client's share of it; both freed on drop.
#[derive(Debug)]
pub struct PoolPlace {
    _share: Option<AddressPlace>,
    _permit: OwnedSemaphorePermit,
}

impl PlacePool {
    /// A pool of `max` places (at least one), a quarter of them per client,
    /// refused with RESOURCE_EXHAUSTED.
    pub fn new(max: usize, full: GrpcRefusal, share_full: GrpcRefusal, what: &'static str) -> Self {
        let max = max.max(1);
        Self::with_share(
            max,
            AddressShares::quarter_of(max),
            Code::ResourceExhausted,
            (full, share_full),
            what,
        )
    }

    /// A pool of `max` places, `shares` of them per client, refused with
    /// `code` and counted as `(full, share_full)`.
    pub fn with_share(
        max: usize,
        shares: Arc<AddressShares>,
        code: Code,
        (full, share_full): (GrpcRefusal, GrpcRefusal),
        what: &'static str,
    ) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max)),
            shares,
            code,
            full,
            share_full,
            what,
        }
    }

    /// A place for `client`, or a refusal (counted in `metrics`). The
    /// client's share is checked first, so a client over its share is told
    /// so even when the pool is full too. A request made in process
    /// (`client` None: the explorer's gateway) takes no share.
    pub fn take(&self, client: Option<ClientAddr>, metrics: &Metrics) -> Result<PoolPlace, Status> {
        let what = self.what;
        let share = match client {
            Some(c) => Some(self.shares.take(c).ok_or_else(|| {
                metrics.grpc_refused(self.share_full);
                Status::new(
                    self.code,
                    format!(
                        "your address holds its share of the {what} on this node; \
                         read the answers you asked for, or try again later"
                    ),
                )
            })?),
            None => None,
        };
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            metrics.grpc_refused(self.full);
            return Err(Status::new(
                self.code,
                format!("too many {what} on this node right now; try again later"),
            ));
        };
        Ok(PoolPlace {
            _share: share,
            _permit: permit,
        })
    }

    /// Clients holding at least one place.
    pub fn clients(&self) -> usize {
        self.shares.clients()
    }

    /// Places free now.
    pub fn free(&self) -> usize {
        self.total.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn client(s: &str) -> Option<ClientAddr> {
        Some(s.parse::<IpAddr>().unwrap().into())
    }

    #[test]
    fn one_client_takes_a_quarter_and_four_take_the_pool() {
        let metrics = Metrics::new();
        let pool = PlacePool::new(
            4,
            GrpcRefusal::BlockRanges,
            GrpcRefusal::BlockRangesPerIp,
            "block-range reads",
        );
        let a = pool.take(client("10.0.0.1"), &metrics).expect("a's one");
        let refused = pool.take(client("10.0.0.1"), &metrics).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("your address"), "{refused:?}");
        let others: Vec<_> = ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .iter()
            .map(|c| pool.take(client(c), &metrics).expect("another client"))
            .collect();
        assert_eq!(pool.free(), 0);
        let full = pool.take(client("10.0.0.5"), &metrics).unwrap_err();
        assert!(full.message().contains("too many"), "{full:?}");
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::BlockRangesPerIp), 1);
        assert_eq!(metrics.grpc_refusals(GrpcRefusal::BlockRanges), 1);
        drop(a);
        assert_eq!(pool.free(), 1);
        let a = pool.take(client("10.0.0.1"), &metrics);
        assert!(a.is_ok(), "a's place given back");
        drop((a, others));
        // In process (no client address): no share, only the pool.
        let in_process: Vec<_> = (0..4)
            .map(|_| pool.take(None, &metrics).expect("in process"))
            .collect();
        assert!(
            pool.take(None, &metrics).is_err(),
            "the pool still bounds them"
        );
        drop(in_process);
    }
}
