//! `config.toml`: the node's local settings (addresses, peers, timeouts,
//! limits). Everything the chain agrees on lives in the genesis instead.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mempool::MempoolConfig;

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The cause (with line and column).
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Which setting is invalid, and why.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A human-readable name for logs.
    pub moniker: String,
    /// Peer-to-peer networking.
    pub p2p: P2pConfig,
    /// The gRPC server.
    pub grpc: GrpcConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The web explorer (off by default).
    pub explorer: ExplorerConfig,
    /// What the store keeps.
    pub storage: StorageConfig,
    /// Serving snapshots to joining nodes, and joining by state sync.
    pub state_sync: StateSyncConfig,
    /// Consensus timeouts and block limits.
    pub consensus: ConsensusConfig,
    /// Mempool limits.
    pub mempool: MempoolConfig,
    /// Switches meant only for testnets.
    pub testing: TestingConfig,
}

/// Switches meant only for testnets; never set them on a real chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestingConfig {
    /// Double-sign on purpose: beside every non-nil prevote, also sign and
    /// send a nil prevote for the same height and round, bypassing the
    /// double-sign guard, so that evidence and slashing can be watched.
    pub double_sign: bool,
    /// Double-sign exactly once: one conflicting nil prevote, at the first
    /// height ≥ 3 where this validator prevotes for a block, then behave.
    /// "Once" holds across restarts (a durable flag in the database).
    pub double_sign_once: bool,
    /// Serve block sync with genuine headers and certificates but forged
    /// bodies (a fabricated transaction, or the carried last commit
    /// dropped), and follow each served request with an unsolicited block
    /// response: a Byzantine sync peer for tests of the syncing side.
    pub tamper_sync_bodies: bool,
    /// Never ban or disconnect a peer for its charges (they are still
    /// counted): the defence switched off, for the attack tests' negative
    /// control.
    pub disable_bans: bool,
    /// Serve every certificate through the explorer's JSON gateway with one
    /// bit of its aggregate signature flipped, so that a test can watch the
    /// browser's own verification turn red.
    pub tamper_explorer_certificates: bool,
    /// Serve every state proof (`prove` queries) with one bit of the proven
    /// value flipped, so that a test can watch `agora query --prove` refuse
    /// it.
    pub tamper_state_proofs: bool,
    /// Serve every page of a list (delegations, unbonding, redelegations,
    /// slashes) without its first item (and without that item's proof;
    /// the list's count stays proven), so that a test can watch `agora
    /// query --prove` catch a node leaving an item out.
    pub hide_listed_items: bool,
    /// Serve every state-sync chunk with one byte added to its first
    /// leaf's value (offers stay genuine), so that a test can watch a
    /// joining node refuse the chunks and charge this peer.
    pub tamper_snapshot_chunks: bool,
    /// Leave every request for the first chunk holding leaves of a
    /// snapshot unanswered (offers and every other chunk stay genuine), so
    /// that a test can watch a joining node set this peer aside.
    pub withhold_snapshot_chunk: bool,
    /// Shift this node's clock by this many milliseconds (negative: behind),
    /// so that a test can watch a validator with a wrong clock.
    pub clock_offset_ms: i64,
    /// Leave the first this many block requests unanswered (an answer lost
    /// on the way), so that a test can watch a syncing peer recover from a
    /// request that timed out.
    pub drop_block_requests: u32,
}

impl TestingConfig {
    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.double_sign
            || self.double_sign_once
            || self.tamper_sync_bodies
            || self.disable_bans
            || self.tamper_explorer_certificates
            || self.tamper_state_proofs
            || self.hide_listed_items
            || self.tamper_snapshot_chunks
            || self.withhold_snapshot_chunk
            || self.clock_offset_ms != 0
            || self.drop_block_requests != 0
    }
}

/// Peer-to-peer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// UDP address of the QUIC endpoint.
    pub listen: SocketAddr,
    /// Addresses of peers to stay connected to.
    pub peers: Vec<SocketAddr>,
    /// Connections at most.
    pub max_peers: usize,
    /// Inbound connections from addresses not in `peers` that one IPv4
    /// address or IPv6 /64 may hold at most (bans bind to the same unit).
    pub max_strangers_per_network: usize,
}

/// The least `grpc.silent_client_secs`: a keep-alive ping every second.
pub const MIN_SILENT_CLIENT_SECS: u64 = 3;

/// gRPC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// TCP address of the gRPC server.
    pub listen: SocketAddr,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one IP address at most.
    pub max_connections_per_ip: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Requests being answered on one connection at most.
    pub max_requests_per_connection: usize,
    /// Requests being answered in total at most (until their answers are
    /// handed to HTTP/2).
    pub max_requests: usize,
    /// Of those, held by one client address at most.
    pub max_requests_per_ip: usize,
    /// Certificate streams open at most.
    pub max_certificate_streams: usize,
    /// `GetBlocks` answers being read or sent at most (a quarter of them
    /// to one client address).
    pub max_block_ranges: usize,
    /// `GetBlock` and `GetValidatorSet` answers being read or sent at most
    /// (a quarter of them to one client address).
    pub max_large_answers: usize,
    /// Seconds a connection may send nothing (no request, no answer to the
    /// server's keep-alive ping) before it is closed.
    pub silent_client_secs: u64,
    /// Seconds an answer may wait on its client (ready to send, no room in
    /// the client's window) before the connection is closed and the places
    /// its answers held are freed (at least 1).
    pub stalled_answer_secs: u64,
    /// PEM certificate chain for TLS on the gRPC listener (with
    /// `tls_key_file`; relative to the home folder). Unset: plain TCP.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key for TLS on the gRPC listener.
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl GrpcConfig {
    /// The server limits these settings give.
    pub fn limits(&self) -> crate::rpc::ServerLimits {
        crate::rpc::ServerLimits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_streams_per_connection: self.max_streams_per_connection,
            max_requests_per_connection: self.max_requests_per_connection,
            max_requests: self.max_requests,
            max_requests_per_ip: self.max_requests_per_ip,
            max_certificate_streams: self.max_certificate_streams,
            max_block_ranges: self.max_block_ranges,
            max_large_answers: self.max_large_answers,
            // `validate` refuses less; the floor keeps the keep-alive
            // interval above zero for a config that skipped it.
            silent_client: std::time::Duration::from_secs(
                self.silent_client_secs.max(MIN_SILENT_CLIENT_SECS),
            ),
            stalled_answer: std::time::Duration::from_secs(self.stalled_answer_secs.max(1)),
        }
    }
}

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether to serve /metrics.
    pub enabled: bool,
    /// TCP address of the metrics endpoint.
    pub listen: SocketAddr,
}

/// Store settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Obsolete and ignored: older nodes kept this many whole-state
    /// snapshots; the store now holds one copy of the state, as leaves
    /// updated by each block. Still accepted so that existing config
    /// files load; the node warns when it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_states: Option<u64>,
    /// Blocks kept: 0 (the default) keeps every block; N > 0 keeps at
    /// least the last N heights' blocks, certificates, seeds, block-hash
    /// and transaction index entries and deletes older ones every few
    /// commits, so the store stays bounded. A value below the chain's
    /// `unbonding_period` + `storage::prune::EVIDENCE_MARGIN` is raised to
    /// that (with a warning at start): heights inside the evidence window
    /// are always kept. A pruned node cannot serve older heights (gRPC
    /// answers NOT_FOUND saying so, block sync tells peers its lowest
    /// height); `agora audit` from genesis needs a node that keeps all.
    pub keep_blocks: u64,
}

/// State sync (see `crate::state_sync`). Serving: every node with
/// `snapshot_interval` > 0 takes a snapshot of its state every that many
/// heights and keeps the last two for peers. Joining: a node whose store is
/// empty and `enable` is set starts from a peer's snapshot instead of
/// replaying from genesis.
///
/// Trust (as CometBFT's light client): `trust_height` and `trust_hash` name
/// a block the operator trusts, taken from a source they trust (their own
/// node, an explorer they verified). The snapshot's app hash is verified
/// from it by the light client over `rpc_servers` (more than 1/3 of the
/// trusted set's power must sign any height it skips to), so the checkpoint
/// must be recent: within the unbonding period, while its validators still
/// have stake to lose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSyncConfig {
    /// Heights between snapshots served to peers; 0 serves none.
    pub snapshot_interval: u64,
    /// Join by state sync when the store is empty.
    pub enable: bool,
    /// Height of the trusted block (1 or more).
    pub trust_height: u64,
    /// Hash of the trusted block's header, 64 hex digits.
    pub trust_hash: String,
    /// gRPC endpoints (`http://host:port`) the light client fetches headers,
    /// certificates and validator sets from; any one answering will do,
    /// since nothing they serve is believed without verification.
    pub rpc_servers: Vec<String>,
    /// How long to wait for a peer's answer to a snapshot or chunk request
    /// before asking another peer (the silent one is not charged: a slow
    /// link is not a fault).
    pub chunk_timeout_ms: u64,
}

impl Default for StateSyncConfig {
    fn default() -> Self {
        Self {
            snapshot_interval: 1000,
            enable: false,
            trust_height: 0,
            trust_hash: String::new(),
            rpc_servers: Vec::new(),
            chunk_timeout_ms: 10_000,
        }
    }
}

impl StateSyncConfig {
    /// The trusted checkpoint, checked: a height from 1 and a 32-byte hash.
    pub fn checkpoint(&self) -> Result<(u64, agora_validator::Hash), String> {
        if self.trust_height == 0 {
            return Err("state_sync.trust_height must be set (a height from 1)".into());
        }
        let bytes = hex::decode(&self.trust_hash)
            .map_err(|_| "state_sync.trust_hash is not hex".to_string())?;
        let hash = bytes
            .try_into()
            .map_err(|_| "state_sync.trust_hash must be 32 bytes (64 hex digits)".to_string())?;
        Ok((self.trust_height, hash))
    }
}

/// Web explorer settings: an HTTP listener serving the explorer page and
/// its JSON gateway (see `crate::explorer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExplorerConfig {
    /// Whether to serve the explorer. Off by default: a validator should
    /// not serve web pages unless its operator asks for it.
    pub enabled: bool,
    /// TCP address of the explorer.
    pub listen: SocketAddr,
}

impl Default for ExplorerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 26670)),
        }
    }
}

/// Consensus timeouts (Tendermint's, growing by `*_delta_ms` per round) and block limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Wait for a proposal in round 0.
    pub timeout_propose_ms: u64,
    /// Added per round.
    pub timeout_propose_delta_ms: u64,
    /// Wait after any 2/3 prevotes in round 0.
    pub timeout_prevote_ms: u64,
    /// Added per round.
    pub timeout_prevote_delta_ms: u64,
    /// Wait after any 2/3 precommits in round 0.
    pub timeout_precommit_ms: u64,
    /// Added per round.
    pub timeout_precommit_delta_ms: u64,
    /// Pause after a commit before the next height (lets slow votes arrive).
    pub timeout_commit_ms: u64,
    /// Largest block the proposer builds, in encoded bytes.
    pub max_block_bytes: usize,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// How far a proposed block's `time_ms` may be ahead of the local clock.
    pub max_clock_drift_ms: u64,
    /// Heights a validator whose signing state is missing or older than
    /// the chain watches, signing nothing, before it signs: each must pass
    /// without any message of its key it did not sign itself. 0 switches
    /// the wait off (not the alarm on a second instance of the key).
    pub double_sign_check_heights: u64,
    /// Warn when no block was committed for this long, and again every
    /// such period while it lasts, with the connected voting power
    /// (`runner/stall.rs`). 0 switches the warning off.
    pub stall_warning_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            moniker: "agora-node".into(),
            p2p: P2pConfig::default(),
            grpc: GrpcConfig::default(),
            metrics: MetricsConfig::default(),
            explorer: ExplorerConfig::default(),
            storage: StorageConfig::default(),
            state_sync: StateSyncConfig::default(),
            consensus: ConsensusConfig::default(),
            mempool: MempoolConfig::default(),
            testing: TestingConfig::default(),
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 26656)),
            peers: Vec::new(),
            max_peers: 200,
            max_strangers_per_network: crate::transport::DEFAULT_STRANGERS_PER_NETWORK,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        let l = crate::rpc::ServerLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            max_streams_per_connection: l.max_streams_per_connection,
            max_requests_per_connection: l.max_requests_per_connection,
            max_requests: l.max_requests,
            max_requests_per_ip: l.max_requests_per_ip,
            max_certificate_streams: l.max_certificate_streams,
            max_block_ranges: l.max_block_ranges,
            max_large_answers: l.max_large_answers,
            silent_client_secs: l.silent_client.as_secs(),
            stalled_answer_secs: l.stalled_answer.as_secs(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 26660)),
        }
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            timeout_propose_ms: 1_000,
            timeout_propose_delta_ms: 500,
            timeout_prevote_ms: 500,
            timeout_prevote_delta_ms: 250,
            timeout_precommit_ms: 500,
            timeout_precommit_delta_ms: 250,
            timeout_commit_ms: 200,
            max_block_bytes: 4 * 1024 * 1024 - 64 * 1024,
            max_block_txs: 10_000,
            max_clock_drift_ms: 2_000,
            double_sign_check_heights: 10,
            stall_warning_ms: 30_000,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: p.clone(),
            source,
        })?;
        cfg.validate()
            .map_err(|message| ConfigError::Invalid { path: p, message })?;
        Ok(cfg)
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unserialisable: {e}\n"))
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.consensus;
        if c.timeout_propose_ms == 0 || c.timeout_prevote_ms == 0 || c.timeout_precommit_ms == 0 {
            return Err("consensus timeouts must be positive".into());
        }
        // The block travels in one frame (proposal or block response).
        if c.max_block_bytes == 0
            || c.max_block_bytes > crate::transport::wire::MAX_BLOCK_FRAME - 64 * 1024
        {
            return Err(format!(
                "consensus.max_block_bytes must be in 1..={}",
                crate::transport::wire::MAX_BLOCK_FRAME - 64 * 1024
            ));
        }
        if self.mempool.max_txs == 0 || self.mempool.max_bytes == 0 {
            return Err("mempool limits must be positive".into());
        }
        if self.p2p.max_peers == 0 || self.p2p.max_strangers_per_network == 0 {
            return Err("p2p.max_peers and p2p.max_strangers_per_network must be positive".into());
        }
        if self.grpc.stalled_answer_secs == 0 {
            return Err("grpc.stalled_answer_secs must be at least 1".into());
        }
        if self.grpc.silent_client_secs < MIN_SILENT_CLIENT_SECS {
            return Err(format!(
                "grpc.silent_client_secs must be at least {MIN_SILENT_CLIENT_SECS} (the server pings an idle client every third of it), not {}",
                self.grpc.silent_client_secs
            ));
        }
        let ss = &self.state_sync;
        if ss.enable {
            ss.checkpoint()?;
            if ss.rpc_servers.is_empty() {
                return Err("state_sync.rpc_servers must name at least one gRPC endpoint to verify the snapshot's header with".into());
            }
            if self.p2p.peers.is_empty() {
                return Err("state sync needs p2p.peers to fetch the snapshot from".into());
            }
        }
        if ss.chunk_timeout_ms == 0 {
            return Err("state_sync.chunk_timeout_ms must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn partial_file_uses_defaults_and_unknown_keys_fail() {
        let c: Config =
            toml::from_str("moniker = \"x\"\n[p2p]\npeers = [\"127.0.0.1:1\"]\n").unwrap();
        assert_eq!(c.moniker, "x");
        assert_eq!(c.p2p.peers.len(), 1);
        assert_eq!(c.grpc, GrpcConfig::default());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }

    #[test]
    fn zero_bounds_of_stalled_answers_and_strangers_are_refused() {
        let parse = |text: &str| toml::from_str::<Config>(text).unwrap().validate();
        let e = parse("[grpc]\nstalled_answer_secs = 0\n").unwrap_err();
        assert!(e.contains("stalled_answer_secs"), "{e}");
        let e = parse("[p2p]\nmax_strangers_per_network = 0\n").unwrap_err();
        assert!(e.contains("max_strangers_per_network"), "{e}");
        parse("[grpc]\nstalled_answer_secs = 1\n").unwrap();
        let c = Config::default();
        assert_eq!(
            c.grpc.limits().stalled_answer,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(c.p2p.max_strangers_per_network, 4);
    }

    #[test]
    fn a_grpc_silence_bound_below_three_seconds_is_refused() {
        let with = |secs: u64| {
            toml::from_str::<Config>(&format!("[grpc]\nsilent_client_secs = {secs}\n"))
                .unwrap()
                .validate()
        };
        let e = with(2).unwrap_err();
        assert!(
            e.contains("silent_client_secs") && e.contains("not 2"),
            "{e}"
        );
        with(MIN_SILENT_CLIENT_SECS).unwrap();
        let c = Config::default();
        assert_eq!(
            c.grpc.limits().silent_client,
            std::time::Duration::from_secs(60)
        );
        assert_eq!(
            c.grpc.limits().keepalive(),
            std::time::Duration::from_secs(20)
        );
    }

    #[test]
    fn keep_blocks_defaults_to_keeping_everything() {
        assert_eq!(Config::default().storage.keep_blocks, 0);
        let c: Config = toml::from_str("[storage]\nkeep_blocks = 500\n").unwrap();
        assert_eq!(c.storage.keep_blocks, 500);
        assert!(toml::from_str::<Config>("[storage]\nkeep_blocks = -1\n").is_err());
    }

    #[test]
    fn state_sync_needs_a_checkpoint_and_servers_when_enabled() {
        let c = Config::default();
        assert!(!c.state_sync.enable && c.state_sync.snapshot_interval > 0);
        let on = |extra: &str| {
            toml::from_str::<Config>(&format!(
                "[p2p]\npeers = [\"127.0.0.1:1\"]\n[state_sync]\nenable = true\n{extra}"
            ))
            .unwrap()
            .validate()
        };
        let hash = "ab".repeat(32);
        let servers = "rpc_servers = [\"http://127.0.0.1:9090\"]\n";
        assert!(on(servers).unwrap_err().contains("trust_height"));
        let e = on(&format!(
            "trust_height = 5\ntrust_hash = \"abcd\"\n{servers}"
        ))
        .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = on(&format!("trust_height = 5\ntrust_hash = \"{hash}\"\n")).unwrap_err();
        assert!(e.contains("rpc_servers"), "{e}");
        on(&format!(
            "trust_height = 5\ntrust_hash = \"{hash}\"\n{servers}"
        ))
        .unwrap();
    }

    #[test]
    fn load_reports_path_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[consensus]\ntimeout_propose_ms = 0\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("timeouts"), "{e}");
    }
}
