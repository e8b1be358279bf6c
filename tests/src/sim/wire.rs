//! The messages of the simulated network and what the simulator reads off
//! them: which travel as gossip, the receiving transport's de-duplication
//! key, the signing slot of a validly signed proposal or vote (what the
//! checker needs to see an equivocation), and one-line descriptions for
//! `SIM_TRACE`.

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::evidence::{InfractionKey, infraction_key};
use agora_validator::crypto::{Hash, ZERO_HASH, sha3_256};
use agora_validator::engine::Action;
use agora_validator::{Address, Height};
use prost::Message;

/// A message on the simulated wire.
#[derive(Debug, Clone)]
pub enum Wire {
    /// A proposal with its block.
    Proposal(Box<pb::Proposal>),
    /// A prevote or precommit.
    Vote(pb::Vote),
    /// Bytes that claim to be a vote (junk from a Byzantine sender).
    Raw(Vec<u8>),
    /// Double-sign evidence.
    Evidence(pb::Evidence),
    /// Transactions (mempool gossip).
    Txs(Vec<pb::Transaction>),
    /// The sender's latest committed height.
    Status(Height),
    /// Blocks wanted.
    BlockRequest {
        /// The first height wanted.
        from: Height,
        /// How many consecutive heights from `from`.
        count: u32,
    },
    /// Blocks with their certificates.
    BlockResponse(Box<pb::BlockResponse>),
    /// A joining node asks for the newest snapshot.
    SnapshotRequest,
    /// The sender's newest snapshot (height 0: none).
    SnapshotOffer(Box<pb::SnapshotOffer>),
    /// One chunk of a snapshot wanted.
    ChunkRequest(pb::ChunkRequest),
    /// One chunk's leaves.
    ChunkResponse(Box<pb::ChunkResponse>),
}

impl Wire {
    /// Gossip (may be lost before GST, duplicated, and is de-duplicated by
    /// the receiving transport); the rest travels on reliable streams.
    pub(super) fn is_gossip(&self) -> bool {
        !matches!(
            self,
            Self::Status(_)
                | Self::BlockRequest { .. }
                | Self::BlockResponse(_)
                | Self::SnapshotRequest
                | Self::SnapshotOffer(_)
                | Self::ChunkRequest(_)
                | Self::ChunkResponse(_)
        )
    }

    /// A 64-bit digest of the encoding (SipHash with fixed keys: cheap and
    /// deterministic; a collision among one run's messages is negligible).
    pub(super) fn dedup_key(&self) -> Option<u64> {
        use std::hash::{DefaultHasher, Hasher};
        let bytes = match self {
            Self::Proposal(p) => p.encode_to_vec(),
            Self::Vote(v) => v.encode_to_vec(),
            Self::Raw(b) => b.clone(),
            Self::Evidence(e) => e.encode_to_vec(),
            Self::Txs(t) => pb::TransactionBatch { txs: t.clone() }.encode_to_vec(),
            _ => return None,
        };
        let mut h = DefaultHasher::new();
        h.write(&bytes);
        Some(h.finish())
    }
}

/// What the simulator knows about a validly signed message (never shown to engines).
#[derive(Debug, Clone, Copy)]
pub(super) struct SignedTag {
    /// The signer's slot: two different contents under one key are an
    /// equivocation.
    pub(super) key: InfractionKey,
    /// What was signed in that slot (the block and POL round of a
    /// proposal, the block hash of a vote).
    pub(super) content: Hash,
}

impl SignedTag {
    /// The tag of a proposal or vote as the message itself claims it (the
    /// sender only tags what it signed genuinely); None for other messages
    /// or fields that do not parse.
    pub(super) fn of(w: &Wire) -> Option<SignedTag> {
        match w {
            Wire::Proposal(p) => {
                let hash = header_hash(p.block.as_ref()?.header.as_ref()?);
                Some(SignedTag {
                    key: InfractionKey {
                        offender: Address::from_slice(&p.proposer_address).ok()?,
                        height: p.height,
                        round: p.round,
                        kind: 0,
                    },
                    content: sha3_256(&[&hash[..], &p.pol_round.to_be_bytes()].concat()),
                })
            }
            Wire::Vote(v) => {
                let mut content = ZERO_HASH;
                if v.block_hash.len() == 32 {
                    content.copy_from_slice(&v.block_hash);
                }
                Some(SignedTag {
                    key: InfractionKey {
                        offender: Address::from_slice(&v.validator_address).ok()?,
                        height: v.height,
                        round: v.round,
                        kind: u8::try_from(v.vote_type).ok()?,
                    },
                    content,
                })
            }
            _ => None,
        }
    }
}

fn short(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(4)])
}

/// One line on a message, for `SIM_TRACE`.
pub(super) fn describe_wire(w: &Wire) -> String {
    match w {
        Wire::Proposal(p) => format!(
            "proposal h={} r={} pol={} from={} block={}",
            p.height,
            p.round,
            p.pol_round,
            short(&p.proposer_address),
            p.block
                .as_ref()
                .and_then(|b| b.header.as_ref())
                .map(|h| short(&header_hash(h)))
                .unwrap_or_default()
        ),
        Wire::Vote(v) => format!(
            "vote t={} h={} r={} from={} value={}",
            v.vote_type,
            v.height,
            v.round,
            short(&v.validator_address),
            short(&v.block_hash)
        ),
        Wire::Raw(b) => format!("{} raw bytes", b.len()),
        Wire::Evidence(e) => format!("evidence {:?}", infraction_key(e)),
        Wire::Txs(t) => format!("{} txs", t.len()),
        Wire::Status(h) => format!("status {h}"),
        Wire::BlockRequest { from, count } => format!("request {from}+{count}"),
        Wire::BlockResponse(r) => format!(
            "response {} blocks, latest {}",
            r.blocks.len(),
            r.latest_height
        ),
        Wire::SnapshotRequest => "snapshot request".into(),
        Wire::SnapshotOffer(o) => format!("snapshot offer {}", o.height),
        Wire::ChunkRequest(r) => format!("chunk request {}#{}", r.height, r.index),
        Wire::ChunkResponse(r) => {
            format!("chunk {}#{}, {} leaves", r.height, r.index, r.leaves.len())
        }
    }
}

/// One line on an engine action, for `SIM_TRACE`.
pub(super) fn describe_action(a: &Action<usize>) -> String {
    match a {
        Action::BroadcastProposal(p) => {
            format!("broadcast {}", describe_wire(&Wire::Proposal(p.clone())))
        }
        Action::BroadcastVote(v) => format!("broadcast {}", describe_wire(&Wire::Vote(v.clone()))),
        Action::Commit(r) => format!(
            "COMMIT h={} r={} {} txs={} evidence={}",
            r.height,
            r.round,
            short(&r.block_hash),
            r.block.txs.len(),
            r.block.evidence.len()
        ),
        Action::Wal(_) => "wal".into(),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}
