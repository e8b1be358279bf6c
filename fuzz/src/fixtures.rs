//! The fixed world every target decodes against: a four-validator genesis,
//! its ledger and validator set, and a short chain made by the real engine
//! (its blocks, certificates, WAL inputs, signing states and snapshots are
//! both the seed corpus and the context of the targets that check blocks).
//!
//! Everything here is deterministic: the same keys, the same genesis, the
//! same chain on every run, so a crash found once replays anywhere.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::OnceLock;

use agora_proto::v1 as pb;
use agora_validator::consensus::{Input, SigningState};
use agora_validator::crypto::{AccountSecretKey, Hash, SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::engine::{
    Action, CommitRecord, Engine, EngineConfig, MempoolView, Restored, Tip,
};
use agora_validator::ledger::{DecodedTx, Ledger, tx};
use agora_validator::light_client::LightBlock;
use agora_validator::{ChainId, HasAddress, ValidatorSet};

/// Chain id of the fuzz world.
pub const CHAIN: &str = "agora-fuzz";
/// Validators at genesis.
pub const VALIDATORS: u8 = 4;
/// Base units per token.
pub const UNIT: u128 = 1_000_000;
/// The clock the chain is made at (ms), after genesis time 0.
pub const NOW_MS: u64 = 10_000;
/// The DER bytes the fuzzed Hello is checked against (the peer's TLS
/// certificate as this side saw it; the Hello only hashes it).
pub const PEER_CERT_DER: &[u8] = b"agora-fuzz peer certificate";
/// The genesis hash the fuzzed Hello must name (any fixed value: the
/// Hello only compares it).
pub const GENESIS_HASH: [u8; 32] = [0x47; 32];
/// Heights of the reference chain.
pub const HEIGHTS: u64 = 3;

/// The BLS consensus key of validator `i`.
pub fn validator_key(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i + 1; 32]).unwrap_or_else(|_| unreachable!("a 32-byte seed"))
}

/// The Ed25519 operator account of validator `i` (funded at genesis).
pub fn operator(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[100 + i; 32])
}

/// A funded user account (`i` < 2).
pub fn user(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[200 + i; 32])
}

/// The chain id.
pub fn chain_id() -> ChainId {
    ChainId::new(CHAIN).unwrap_or_else(|_| unreachable!("a valid chain id"))
}

/// The genesis of the fuzz world.
pub fn genesis() -> pb::Genesis {
    let mut accounts = Vec::new();
    let mut validators = Vec::new();
    for i in 0..VALIDATORS {
        let op = operator(i);
        accounts.push(pb::GenesisAccount {
            address: op.address().0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        let k = validator_key(i);
        validators.push(pb::GenesisValidator {
            operator: op.address().0.to_vec(),
            consensus_public_key: k.public_key().to_bytes().to_vec(),
            proof_of_possession: k.prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT).to_string(),
            commission_rate_bps: 500,
            commission_max_rate_bps: 2_000,
            commission_max_change_bps: 100,
        });
    }
    for i in 0..2 {
        accounts.push(pb::GenesisAccount {
            address: user(i).address().0.to_vec(),
            balance: (1_000 * UNIT).to_string(),
        });
    }
    pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Some(pb::GenesisParams {
            unbonding_period: 10,
            jail_period: 2,
            signed_blocks_window: 8,
            ..Default::default()
        }),
        accounts,
        validators,
    }
}

/// The state a node restores before block 1.
pub fn at_genesis() -> Restored {
    Restored {
        ledger: Ledger::from_genesis(&genesis()).unwrap_or_else(|e| panic!("fuzz genesis: {e}")),
        tip: Tip {
            seed: vrf::genesis_seed(&sha3_256(b"agora-fuzz genesis")),
            block_hash: ZERO_HASH,
            time_ms: 0,
            certificate: None,
        },
        evidence: Vec::new(),
    }
}

/// One signed transaction of every kind, from the genesis accounts, valid
/// at height 1 (each sender's nonce 0).
pub fn sample_txs() -> Vec<pb::Transaction> {
    use pb::tx_body::Kind;
    let chain = chain_id();
    let v = |i: u8| validator_key(i).address().0.to_vec();
    let fee = "1000".to_string();
    let body = |nonce: u64, kind: Kind| pb::TxBody {
        chain_id: CHAIN.into(),
        nonce,
        kind: Some(kind),
        fee: fee.clone(),
    };
    let newcomer = SecretKey::from_seed(&[42; 32]).unwrap_or_else(|_| unreachable!("seed"));
    vec![
        tx::sign(
            &user(0),
            &chain,
            body(
                0,
                Kind::Transfer(pb::Transfer {
                    to: user(1).address().0.to_vec(),
                    amount: "1500".into(),
                }),
            ),
        ),
        tx::sign(
            &user(1),
            &chain,
            body(
                0,
                Kind::Bond(pb::Bond {
                    validator: v(1),
                    amount: (5 * UNIT).to_string(),
                }),
            ),
        ),
        tx::sign(
            &operator(0),
            &chain,
            body(
                0,
                Kind::Unbond(pb::Unbond {
                    validator: v(0),
                    shares: UNIT.to_string(),
                }),
            ),
        ),
        tx::sign(
            &operator(1),
            &chain,
            body(
                0,
                Kind::Redelegate(pb::Redelegate {
                    src_validator: v(1),
                    dst_validator: v(2),
                    shares: UNIT.to_string(),
                }),
            ),
        ),
        tx::sign(
            &operator(2),
            &chain,
            body(
                0,
                Kind::EditValidator(pb::EditValidator {
                    validator: v(2),
                    commission_rate_bps: 600,
                }),
            ),
        ),
        tx::sign(
            &operator(3),
            &chain,
            body(
                0,
                Kind::WithdrawRewards(pb::WithdrawRewards { validator: v(3) }),
            ),
        ),
        tx::sign(
            &operator(3),
            &chain,
            body(1, Kind::Unjail(pb::Unjail { validator: v(3) })),
        ),
        tx::sign(
            &user(0),
            &chain,
            body(
                1,
                Kind::CreateValidator(pb::CreateValidator {
                    consensus_public_key: newcomer.public_key().to_bytes().to_vec(),
                    proof_of_possession: newcomer.prove_possession().to_bytes().to_vec(),
                    self_bond: (2 * UNIT).to_string(),
                    commission_rate_bps: 100,
                    commission_max_rate_bps: 1_000,
                    commission_max_change_bps: 50,
                }),
            ),
        ),
    ]
}

/// A mempool that offers its transactions to the next block built, once.
#[derive(Debug, Default)]
struct OnceMempool(RefCell<Vec<pb::Transaction>>);

impl MempoolView for OnceMempool {
    fn reap(&self, _max_bytes: usize, _max_txs: usize) -> Vec<pb::Transaction> {
        self.0.borrow().clone()
    }
    fn decoded(&self, _: &Hash) -> Option<&DecodedTx> {
        None
    }
}

/// A message one engine broadcast to the others.
enum Gossip {
    Proposal(Box<pb::Proposal>),
    Vote(pb::Vote),
}

/// What the real engine produced while four validators made [`HEIGHTS`]
/// blocks with instant delivery.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Validator 0's commit records, by height.
    pub records: Vec<CommitRecord>,
    /// Every proposal broadcast.
    pub proposals: Vec<pb::Proposal>,
    /// Every vote broadcast.
    pub votes: Vec<pb::Vote>,
    /// Validator 0's WAL inputs, with their heights, in append order.
    pub wal: Vec<Input>,
    /// Every signing state any validator persisted.
    pub signing_states: Vec<SigningState>,
}

/// The ledger after each record of `chain`, rebuilt as a node does: the
/// genesis leaves with each block's `state_changes` applied.
pub fn ledgers_after(chain: &Chain) -> Vec<(u64, Ledger)> {
    let mut leaves: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
        at_genesis().ledger.leaves().into_iter().collect();
    let mut out = Vec::with_capacity(chain.records.len());
    for rec in &chain.records {
        for (k, v) in &rec.state_changes {
            match v {
                Some(v) => leaves.insert(k.clone(), v.clone()),
                None => leaves.remove(k),
            };
        }
        let ledger =
            Ledger::from_leaves(&leaves).unwrap_or_else(|e| panic!("state {}: {e}", rec.height));
        out.push((rec.height, ledger));
    }
    out
}

/// Runs four engines until validator 0 committed [`HEIGHTS`] blocks; block
/// 1 carries [`sample_txs`].
pub fn make_chain() -> Chain {
    let pool = OnceMempool(RefCell::new(sample_txs()));
    let mut engines: Vec<Engine<usize>> = (0..VALIDATORS)
        .map(|i| {
            Engine::new(
                EngineConfig::default(),
                Some(validator_key(i)),
                None,
                at_genesis(),
                [7; 32],
            )
        })
        .collect();
    let mut queue = VecDeque::new();
    let mut out = Chain {
        records: Vec::new(),
        proposals: Vec::new(),
        votes: Vec::new(),
        wal: Vec::new(),
        signing_states: Vec::new(),
    };
    for (i, e) in engines.iter_mut().enumerate() {
        for a in e.start_height(NOW_MS, &pool).expect("start") {
            queue.push_back((i, a));
        }
    }
    let mut steps = 0u32;
    while let Some((from, a)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 1_000_000, "the reference chain does not progress");
        let msg = match a {
            Action::BroadcastProposal(p) => {
                out.proposals.push((*p).clone());
                Gossip::Proposal(p)
            }
            Action::BroadcastVote(v) => {
                out.votes.push(v.clone());
                Gossip::Vote(v)
            }
            Action::Wal(input) => {
                if from == 0 {
                    out.wal.push(input);
                }
                continue;
            }
            Action::PersistSigningState(s) => {
                out.signing_states.push(s);
                continue;
            }
            Action::Commit(rec) => {
                if from == 0 {
                    pool.0.borrow_mut().clear();
                    out.records.push(*rec.clone());
                }
                if rec.height < HEIGHTS {
                    for a in engines[from].start_height(NOW_MS, &pool).expect("start") {
                        queue.push_back((from, a));
                    }
                }
                continue;
            }
            _ => continue,
        };
        for (to, e) in engines.iter_mut().enumerate().filter(|(to, _)| *to != from) {
            let none = OnceMempool::default();
            let actions = match &msg {
                Gossip::Proposal(p) => e.on_proposal(from, (**p).clone(), NOW_MS, &none),
                Gossip::Vote(v) => e.on_vote(from, v.clone(), NOW_MS, &none),
            };
            for a in actions.expect("engine") {
                queue.push_back((to, a));
            }
        }
    }
    assert_eq!(out.records.len() as u64, HEIGHTS, "the chain was not made");
    out
}

/// The fixed context of the targets, built once per process.
#[derive(Debug)]
pub struct World {
    /// The chain id.
    pub chain: ChainId,
    /// The ledger at genesis.
    pub genesis: Restored,
    /// The ledger and tip after block 1 of the reference chain.
    pub after_block_1: Restored,
    /// The validator set of height 1 (certificates are verified against it).
    pub set: ValidatorSet,
    /// Each block of the reference chain as a light client is served it:
    /// header, certificate and the set of its height (index h − 1).
    pub light_blocks: Vec<LightBlock>,
}

/// The reference chain's blocks as light blocks, each with the set of its
/// height as the ledger before it holds it.
fn light_blocks(chain: &Chain) -> Vec<LightBlock> {
    let mut before = vec![at_genesis().ledger];
    before.extend(ledgers_after(chain).into_iter().map(|(_, l)| l));
    chain
        .records
        .iter()
        .zip(&before)
        .map(|(rec, ledger)| LightBlock {
            header: rec
                .block
                .header
                .clone()
                .unwrap_or_else(|| panic!("a header")),
            certificate: rec.certificate.clone(),
            validators: ledger
                .validator_set(rec.height)
                .cloned()
                .unwrap_or_else(|| panic!("the set of height {}", rec.height)),
        })
        .collect()
}

/// The world, made on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let genesis = at_genesis();
        let set = genesis
            .ledger
            .validator_set(1)
            .cloned()
            .unwrap_or_else(|| panic!("no set at height 1"));
        let chain = make_chain();
        let rec = &chain.records[0];
        let after_block_1 = Restored {
            ledger: ledgers_after(&chain)[0].1.clone(),
            tip: Tip {
                seed: rec.seed,
                block_hash: rec.block_hash,
                time_ms: rec.block.header.as_ref().map_or(0, |h| h.time_ms),
                certificate: Some(rec.certificate.clone()),
            },
            evidence: Vec::new(),
        };
        let light_blocks = light_blocks(&chain);
        World {
            chain: chain_id(),
            genesis,
            after_block_1,
            set,
            light_blocks,
        }
    })
}
