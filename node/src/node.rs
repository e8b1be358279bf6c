//! Assembly of a running node from its home directory: configuration,
//! genesis, keys, storage, transport and metrics. [`Node::run`] hands them to
//! the engine's driver ([`crate::runner::Runner`]).

use std::sync::Arc;

use agora_validator::{ChainId, SecretKey};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::genesis::LoadedGenesis;
use crate::home::{Home, HomeError};
use crate::metrics::{self, Metrics};
use crate::storage::{Binding, Storage, StorageError};
use crate::transport::{Transport, TransportConfig, TransportError, TransportEvent};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The home directory is incomplete or invalid.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The database could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The genesis chain id is invalid.
    #[error("genesis chain id: {0}")]
    ChainId(String),
    /// The gRPC TLS certificate or key could not be read.
    #[error("gRPC TLS: reading {path}: {source}")]
    GrpcTls {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("binding metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started node.
pub struct Node {
    /// The home directory.
    pub home: Home,
    /// Local settings.
    pub config: Config,
    /// The genesis and its file hash.
    pub genesis: LoadedGenesis,
    /// The genesis chain id; the transport, engine and gRPC bind messages to it.
    pub chain: ChainId,
    /// The validator key.
    pub key: SecretKey,
    /// Storage.
    pub storage: Arc<Storage>,
    /// The peer-to-peer transport.
    pub transport: Transport,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The bound metrics address, if enabled.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The gRPC listener's TLS identity, when the operator configured one.
    grpc_tls: Option<tonic::transport::ServerTlsConfig>,
    /// The runtime of the servers for clients (gRPC, explorer, metrics);
    /// see [`Node::start_on`].
    services: tokio::runtime::Handle,
    events: mpsc::Receiver<TransportEvent>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

/// A listener bound on `services`' runtime, whose I/O driver then serves
/// it (a listener made on the caller's runtime would be polled there).
async fn bind_on(
    services: &tokio::runtime::Handle,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    services
        .spawn(tokio::net::TcpListener::bind(addr))
        .await
        .map_err(std::io::Error::other)?
}

/// Starts the Prometheus endpoint on `services` if the config enables it;
/// returns the address it listens on.
async fn serve_metrics(
    services: &tokio::runtime::Handle,
    config: &Config,
    metrics: &Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<Option<std::net::SocketAddr>, NodeError> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let l = bind_on(services, config.metrics.listen)
        .await
        .map_err(|source| NodeError::Metrics {
            addr: config.metrics.listen,
            source,
        })?;
    let addr = l.local_addr().ok();
    services.spawn(metrics::serve(l, metrics.clone(), stop));
    Ok(addr)
}

/// The home's store, bound to its genesis file (`storage/identity.rs`).
fn open_store(home: &Home, genesis: &LoadedGenesis) -> Result<Arc<Storage>, NodeError> {
    let storage = Storage::open(home.db())?;
    let hash = hex::encode(genesis.file_hash);
    match storage.bind_genesis(&genesis.file_hash)? {
        Binding::Matched => {}
        Binding::Stamped => info!(genesis_hash = %hash, "store bound to this genesis file"),
        Binding::StampedUnchecked => warn!(
            genesis_hash = %hash,
            "store written by an older agora without block 1 (pruned or state-synced): bound to this genesis file unchecked"
        ),
    }
    Ok(Arc::new(storage))
}

impl Node {
    /// Loads everything from `home` and starts transport and metrics: the
    /// servers for clients (gRPC, explorer, metrics) on the runtime of
    /// `services`, the transport and the consensus driver on the calling
    /// one (pass the calling runtime's handle to keep everything on it).
    ///
    /// Why two: `agora start` runs consensus and QUIC on one thread, so a
    /// peer's message reaches the driver, and our votes reach the wire,
    /// without a wake-up of another thread on the way. Clients' requests
    /// then must not share that thread: a flood of them would delay the
    /// votes (see [`crate::threads`]).
    pub async fn start_on(
        home: &Home,
        services: tokio::runtime::Handle,
    ) -> Result<Self, NodeError> {
        let config = home.load_config()?;
        let genesis = home.load_genesis()?;
        let chain = ChainId::new(genesis.genesis.chain_id.clone())
            .map_err(|e| NodeError::ChainId(e.to_string()))?;
        let key = home.load_validator_key()?;
        let tls = home.load_tls()?;
        let grpc_tls = grpc_tls(home, &config)?;
        home.ensure_data_dir()?;
        let storage = open_store(home, &genesis)?;
        let height = storage.latest_height()?.unwrap_or(0);
        let metrics = Metrics::new();
        Metrics::set(&metrics.height, height);

        let mut tcfg = TransportConfig::new(
            config.p2p.listen,
            chain.clone(),
            genesis.file_hash,
            tls,
            Some(key.clone()),
        );
        tcfg.peers = config.p2p.peers.clone();
        tcfg.max_peers = config.p2p.max_peers;
        tcfg.max_strangers_per_network = config.p2p.max_strangers_per_network;
        tcfg.metrics = metrics.clone();
        if config.testing.disable_bans {
            tracing::error!(
                "testing.disable_bans is ON: misbehaving peers are charged but never banned"
            );
            tcfg.bans = false;
        }
        let (transport, events) = Transport::start(tcfg)?;
        transport.set_height(height);

        let (stop, stop_rx) = watch::channel(false);
        let metrics_addr = serve_metrics(&services, &config, &metrics, stop_rx).await?;
        info!(
            moniker = %config.moniker,
            chain = %chain,
            height,
            p2p = %addr_field(transport.local_addr()),
            metrics = %addr_field(metrics_addr),
            genesis_hash = %hex::encode(genesis.file_hash),
            "node started"
        );
        Ok(Self {
            home: home.clone(),
            config,
            genesis,
            chain,
            key,
            storage,
            transport,
            metrics,
            metrics_addr,
            grpc_tls,
            services,
            events,
            stop,
        })
    }

    /// Serves the web explorer (config `[explorer]`) until the node stops.
    /// A configured explorer that cannot bind stops the start: an operator
    /// who asked for it should not find it silently missing.
    async fn start_explorer(
        &self,
        api: Arc<crate::api::Api>,
    ) -> Result<(), crate::runner::RunError> {
        let cfg = &self.config.explorer;
        let listener = bind_on(&self.services, cfg.listen)
            .await
            .map_err(|source| crate::runner::RunError::Explorer {
                what: format!("binding {}", cfg.listen),
                source,
            })?;
        // The page's root of trust is this file: serve the bytes whose hash
        // seeded this chain, never a file edited since the start.
        let path = self.home.genesis();
        let genesis = std::fs::read(&path).map_err(|source| crate::runner::RunError::Explorer {
            what: format!("reading {}", path.display()),
            source,
        })?;
        if agora_validator::crypto::sha3_256(&genesis) != self.genesis.file_hash {
            return Err(crate::runner::RunError::Explorer {
                what: format!("{} changed since the node started", path.display()),
                source: std::io::Error::other("genesis hash mismatch"),
            });
        }
        let tamper = self.config.testing.tamper_explorer_certificates;
        if tamper {
            tracing::error!(
                "testing.tamper_explorer_certificates is ON: the explorer serves forged certificates"
            );
        }
        let query = crate::rpc::query::QueryService::new(
            api.clone(),
            &self.config.grpc.limits(),
            self.metrics.clone(),
        );
        let gateway = Arc::new(crate::explorer::Gateway::new(
            query,
            api,
            genesis.into(),
            tamper,
        ));
        info!(explorer = %addr_field(listener.local_addr().ok()), "explorer listening");
        self.services.spawn(crate::explorer::serve(
            listener,
            gateway,
            self.stop.subscribe(),
        ));
        Ok(())
    }

    /// Runs the consensus driver until `shutdown` resolves (or a fatal
    /// error), then shuts down gracefully: peers are told, the metrics
    /// server stops. Everything acknowledged was already durable.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), crate::runner::RunError> {
        tokio::pin!(shutdown);
        let synced = match self.state_sync_if_empty(&mut shutdown).await {
            Ok(Some(synced)) => synced,
            Ok(None) => {
                self.stop_network().await;
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "state sync stopped");
                self.stop_network().await;
                return Err(e.into());
            }
        };
        // The stored state, built once: the engine's ledger and the gRPC
        // copy share its tree (state sync hands over the one it rebuilt).
        let ledger = match synced {
            Some(l) => Ok(l),
            None => crate::runner::stored_ledger(&self.storage, &self.genesis),
        };
        let (to_runner, api_rx) = mpsc::channel(1024);
        let (commits, _) = tokio::sync::broadcast::channel(1024);
        let (shared, ledger) =
            match ledger.and_then(|l| Ok((self.shared(to_runner, commits, l.clone())?, l))) {
                Ok(s) => s,
                Err(e) => {
                    self.stop_network().await;
                    return Err(e);
                }
            };
        let grpc_task = self.start_grpc(&shared).await;
        if self.config.explorer.enabled {
            let api = Arc::new(crate::api::Api(shared.clone()));
            if let Err(e) = self.start_explorer(api).await {
                self.stop_network().await;
                return Err(e);
            }
        }
        let result = match crate::runner::Runner::new(&self, shared, ledger) {
            Ok(runner) => {
                let (_, dummy) = mpsc::channel(1);
                let events = std::mem::replace(&mut self.events, dummy);
                runner.run(events, api_rx, shutdown).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "consensus driver stopped");
        }
        info!("shutting down");
        self.stop_network().await;
        if let Some(t) = grpc_task {
            stop_grpc(t).await;
        }
        info!("stopped");
        result
    }

    /// Tells every task to stop and closes the peer connections.
    async fn stop_network(&self) {
        self.stop.send_replace(true);
        self.transport.shutdown().await;
    }

    /// Serves gRPC on the configured address until the node stops; a node
    /// that cannot bind it runs without it (and says so).
    async fn start_grpc(
        &self,
        shared: &Arc<crate::api::Shared>,
    ) -> Option<tokio::task::JoinHandle<Result<(), crate::rpc::RpcError>>> {
        match bind_on(&self.services, self.config.grpc.listen).await {
            Ok(l) => {
                info!(grpc = %addr_field(l.local_addr().ok()), "gRPC listening");
                let mut stop = self.stop.subscribe();
                let api = Arc::new(crate::api::Api(shared.clone()));
                Some(self.services.spawn(crate::rpc::serve(
                    api.clone(),
                    l,
                    self.config.grpc.limits(),
                    self.grpc_tls.clone(),
                    self.metrics.clone(),
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                )))
            }
            Err(e) => {
                tracing::error!(addr = %self.config.grpc.listen, error = %e, "cannot bind gRPC; running without it");
                None
            }
        }
    }

    /// Fills an empty store from a peer's snapshot when `state_sync.enable`
    /// is set (see `crate::state_sync::join`): `Some(Some(ledger))` after a
    /// state sync, `Some(None)` when there was none to do, `None` when
    /// `shutdown` resolved first.
    async fn state_sync_if_empty(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Option<Option<agora_validator::ledger::Ledger>>, crate::state_sync::StateSyncError>
    {
        if !self.config.state_sync.enable || self.storage.latest_height()?.is_some() {
            return Ok(Some(None));
        }
        let joiner = crate::state_sync::Joiner::new(
            &self.config.state_sync,
            &self.chain,
            &self.storage,
            &self.transport,
            &mut self.events,
        )?;
        tokio::select! {
            _ = shutdown.as_mut() => Ok(None),
            r = joiner.run() => {
                let ledger = r?;
                let h = ledger.height();
                self.transport.set_height(h);
                Metrics::set(&self.metrics.height, h);
                Ok(Some(Some(ledger)))
            }
        }
    }

    /// The snapshot shared with the gRPC services, as of the stored tip.
    fn shared(
        &self,
        to_runner: mpsc::Sender<crate::api::ApiRequest>,
        commits: tokio::sync::broadcast::Sender<u64>,
        ledger: agora_validator::ledger::Ledger,
    ) -> Result<Arc<crate::api::Shared>, crate::runner::RunError> {
        use crate::runner::RunError;
        use agora_validator::ledger::Ledger;
        let genesis_set = Ledger::from_genesis(&self.genesis.genesis)
            .ok()
            .and_then(|l| l.validator_set(1).cloned())
            .ok_or_else(|| RunError::Restore("genesis has no validator set".into()))?;
        let changes = self.storage.set_changes(genesis_set)?;
        let latest = self.storage.latest_height()?.unwrap_or(0);
        let latest_hash = match latest {
            0 => [0u8; 32],
            h => self
                .storage
                .block(h)?
                .and_then(|b| b.header.map(|hd| agora_validator::block::header_hash(&hd)))
                .unwrap_or([0u8; 32]),
        };
        if self.config.testing.tamper_state_proofs {
            tracing::error!("testing.tamper_state_proofs is ON: gRPC serves forged state proofs");
        }
        if self.config.testing.hide_listed_items {
            tracing::error!("testing.hide_listed_items is ON: gRPC lists leave items out");
        }
        Ok(Arc::new(crate::api::Shared {
            chain: self.chain.clone(),
            address: agora_validator::Address::of(&self.key.public_key()),
            storage: self.storage.clone(),
            ledger: std::sync::RwLock::new(ledger),
            latest: std::sync::RwLock::new((latest, latest_hash)),
            set_changes: std::sync::RwLock::new(changes),
            pending: std::sync::Mutex::new(Default::default()),
            pending_nonces: std::sync::Mutex::new(Default::default()),
            rejected: std::sync::Mutex::new(Default::default()),
            commits,
            to_runner,
            metrics: self.metrics.clone(),
            evidence_checks: Arc::new(tokio::sync::Semaphore::new(crate::api::MAX_EVIDENCE_CHECKS)),
            tamper_state_proofs: self.config.testing.tamper_state_proofs,
            hide_listed_items: self.config.testing.hide_listed_items,
        }))
    }
}

/// The gRPC server's TLS identity from `grpc.tls_cert_file` and
/// `grpc.tls_key_file` (PEM; relative paths are under the home folder), or
/// `None` when they are not set (plain TCP, the default for a listener on
/// localhost).
fn grpc_tls(
    home: &Home,
    config: &Config,
) -> Result<Option<tonic::transport::ServerTlsConfig>, NodeError> {
    let (Some(cert), Some(key)) = (&config.grpc.tls_cert_file, &config.grpc.tls_key_file) else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        let path = home.root().join(p);
        std::fs::read(&path).map_err(|source| NodeError::GrpcTls { path, source })
    };
    let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
    Ok(Some(
        tonic::transport::ServerTlsConfig::new().identity(identity),
    ))
}

/// Waits for the gRPC server to finish its graceful shutdown, at most
/// [`GRPC_STOP_GRACE`]:
/// graceful shutdown waits for open client connections, and an idle client
/// must not keep the node from exiting.
async fn stop_grpc(t: tokio::task::JoinHandle<Result<(), crate::rpc::RpcError>>) {
    let abort = t.abort_handle();
    if tokio::time::timeout(GRPC_STOP_GRACE, t).await.is_err() {
        // Said, because it is what made a stop slow: a client that keeps
        // an idle connection and never reads the server's GOAWAY.
        tracing::info!(
            grace = ?GRPC_STOP_GRACE,
            "gRPC clients still connected when the shutdown grace ended; closing their connections"
        );
        abort.abort();
    }
}

/// How long a stopping node lets its gRPC clients finish and leave.
const GRPC_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// An address as a log field: `127.0.0.1:9090`, or `off` when there is none
/// (a service turned off in config.toml), not Rust's `Some(..)`.
fn addr_field(a: Option<std::net::SocketAddr>) -> String {
    a.map_or_else(|| "off".to_string(), |a| a.to_string())
}
