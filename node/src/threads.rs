//! The threads a node runs on, and why.
//!
//! - **Consensus thread** (a current-thread tokio runtime, the thread that
//!   calls [`Runtimes::consensus`]'s `block_on`): the engine's driver
//!   (`runner/`), the QUIC transport (endpoint, connections, their read and
//!   write loops) and the consensus timers. A peer's vote goes from the
//!   socket to the engine, and our vote from the engine to the socket,
//!   without waking another thread.
//! - **Services pool** (a multi-thread runtime, one worker per core by
//!   tokio's default, `TOKIO_WORKER_THREADS` overrides it): the gRPC API,
//!   the explorer and the metrics server. A flood of client requests takes
//!   these threads, not the consensus thread; requests reach the driver over
//!   its bounded channel (`api::Shared::to_runner`) as before.
//! - **Blocking pools** of both runtimes: serving blocks and snapshots,
//!   state sync's rebuild, queries that read the store.
//! - **`tx-verifier`** (`tx_verifier.rs`): batch signature verification of
//!   transactions, fed over a bounded channel.
//!
//! Measured (ARCHITECTURE.md, "The node's threads"): with the transport on
//! worker threads, each message crossed threads twice, about 70 context
//! switches per validator-height; keeping it on the driver's thread gave
//! 10% more heights per second at 10% less CPU per height on empty blocks.

/// The two runtimes of a running node.
pub struct Runtimes {
    /// The consensus thread's runtime: run [`crate::node::Node::start_on`]
    /// and [`crate::node::Node::run`] with its `block_on`.
    pub consensus: tokio::runtime::Runtime,
    /// The services pool, whose handle goes to
    /// [`crate::node::Node::start_on`].
    pub services: tokio::runtime::Runtime,
}

impl Runtimes {
    /// Builds both runtimes (no thread runs consensus until `block_on`).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            consensus: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            services: tokio::runtime::Builder::new_multi_thread()
                .thread_name("agora-services")
                .enable_all()
                .build()?,
        })
    }
}
