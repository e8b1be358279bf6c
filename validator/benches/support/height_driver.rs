//! Drives n consensus cores through one height in one process, with the
//! messages encoded and decoded as the wire carries them. Shared by the
//! `height` bench and the crypto-count test.

#![allow(dead_code)]

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::{Consensus, ConsensusConfig, HeightParams, Input, Output};
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256};
use agora_validator::{ChainId, Validator, ValidatorSet};
use prost::Message;
use std::collections::VecDeque;

/// Keys, a genesis-like set (equal power, canonical order) and the height's
/// parameters.
pub struct Fixture {
    pub n: usize,
    pub chain: ChainId,
    pub keys: Vec<SecretKey>,
    pub params: HeightParams,
}

impl Fixture {
    pub fn new(n: usize) -> Self {
        let chain = ChainId::new("agora-bench").expect("chain id");
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::from_seed(&sha3_256(&(i as u64).to_be_bytes())).expect("key"))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.public_key(), 1_000_000))
                .collect(),
        )
        .expect("set");
        let params = HeightParams {
            height: 1,
            validator_set: set,
            prev_seed: sha3_256(b"agora/bench/genesis"),
            parent_hash: ZERO_HASH,
            last_commit: None,
        };
        Self {
            n,
            chain,
            keys,
            params,
        }
    }

    /// n fresh cores, one per key, ready for `StartHeight`.
    pub fn cores(&self) -> Net {
        let cores = self
            .keys
            .iter()
            .map(|k| {
                Consensus::new(
                    ConsensusConfig::default(),
                    self.chain.clone(),
                    Some(k.clone()),
                    None,
                )
            })
            .collect();
        Net {
            cores,
            chain: self.chain.clone(),
            params: self.params.clone(),
        }
    }
}

/// The cores of one height and what they need from their hosts.
pub struct Net {
    pub cores: Vec<Consensus>,
    chain: ChainId,
    params: HeightParams,
}

fn wire(kind: pb::peer_message::Kind) -> Vec<u8> {
    pb::PeerMessage { kind: Some(kind) }.encode_to_vec()
}

fn unwire(bytes: &[u8]) -> Option<Input> {
    match pb::PeerMessage::decode(bytes).ok()?.kind? {
        pb::peer_message::Kind::Proposal(p) => Some(Input::Proposal(p)),
        pb::peer_message::Kind::Vote(v) => Some(Input::Vote(v)),
        _ => None,
    }
}

/// Runs the height until every core has decided; returns the decided block
/// hash if they all agree. `observe(i, f)` wraps every call into core i
/// (the crypto counters use it to attribute work to validators).
pub fn run_height_observed(
    net: &mut Net,
    mut observe: impl FnMut(usize, &mut dyn FnMut()),
) -> Option<Hash> {
    let n = net.cores.len();
    let mut decided: Vec<Option<Hash>> = vec![None; n];
    let mut remaining = n;
    let mut network: VecDeque<(usize, Input)> = (0..n)
        .map(|i| (i, Input::StartHeight(Box::new(net.params.clone()))))
        .collect();
    while let Some((to, first)) = network.pop_front() {
        // The host answers its own core's requests before the next message.
        let mut local = VecDeque::from([first]);
        while let Some(input) = local.pop_front() {
            let mut outputs = Vec::new();
            let core = &mut net.cores[to];
            observe(to, &mut || outputs = core.handle(input.clone()));
            for o in outputs {
                match o {
                    Output::BroadcastProposal(p) => {
                        let bytes = wire(pb::peer_message::Kind::Proposal(*p));
                        for j in (0..n).filter(|j| *j != to) {
                            network.push_back((j, unwire(&bytes).expect("decodes")));
                        }
                    }
                    Output::BroadcastVote(v) => {
                        let bytes = wire(pb::peer_message::Kind::Vote(v));
                        for j in (0..n).filter(|j| *j != to) {
                            network.push_back((j, unwire(&bytes).expect("decodes")));
                        }
                    }
                    Output::RequestProposal { height, round } => {
                        let header = pb::Header {
                            chain_id: net.chain.as_str().into(),
                            height,
                            parent_hash: net.params.parent_hash.to_vec(),
                            validators_hash: net.params.validator_set.hash().to_vec(),
                            next_validators_hash: net.params.validator_set.hash().to_vec(),
                            proposal_round: round,
                            time_ms: 1,
                            ..Default::default()
                        };
                        local.push_back(Input::ProposalContent {
                            height,
                            round,
                            block: pb::Block {
                                header: Some(header),
                                ..Default::default()
                            },
                        });
                    }
                    Output::ValidateBlock {
                        height,
                        round,
                        block,
                        ..
                    } => local.push_back(Input::BlockValidity {
                        height,
                        round,
                        block_hash: block.header.as_ref().map(header_hash).unwrap_or(ZERO_HASH),
                        valid: true,
                    }),
                    Output::Decided(d) => {
                        remaining -= usize::from(decided[to].is_none());
                        decided[to] = Some(d.block_hash);
                    }
                    Output::Rejected(r) => panic!("core {to} rejected an honest input: {r}"),
                    _ => {}
                }
            }
        }
        if remaining == 0 {
            break;
        }
    }
    let first = decided[0]?;
    decided.iter().all(|d| *d == Some(first)).then_some(first)
}

/// [`run_height_observed`] without observation.
pub fn run_height(net: &mut Net) -> Option<Hash> {
    run_height_observed(net, |_, f| f())
}

/// Prints the cryptographic operations per validator-height for one height
/// of `f`: the proposer's, a typical other validator's, and the mean.
#[cfg(feature = "crypto-counters")]
pub fn print_counts(f: &Fixture) {
    use agora_validator::crypto::bls::counters::{self, Counts};
    let mut net = f.cores();
    let proposer = agora_validator::lottery::proposer(
        &f.params.validator_set,
        &f.params.prev_seed,
        f.params.height,
        0,
    )
    .address;
    let mut per_core = vec![Counts::default(); f.n];
    let decided = run_height_observed(&mut net, |i, call| {
        let before = counters::snapshot();
        call();
        per_core[i] = per_core[i].plus(&counters::snapshot().minus(&before));
    });
    assert!(decided.is_some());
    let p = net
        .cores
        .iter()
        .position(|c| c.address() == Some(proposer))
        .expect("proposer");
    let total = per_core.iter().fold(Counts::default(), |a, c| a.plus(c));
    let others: Vec<&Counts> = per_core
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != p)
        .map(|(_, c)| c)
        .collect();
    println!("crypto per validator-height, n = {}", f.n);
    println!(
        "  {:<28} {:>9} {:>9} {:>9} {:>9}",
        "operation", "proposer", "other min", "other max", "mean"
    );
    for (name, get) in Counts::FIELDS {
        let min = others.iter().map(|c| get(c)).min().unwrap_or(0);
        let max = others.iter().map(|c| get(c)).max().unwrap_or(0);
        println!(
            "  {:<28} {:>9} {:>9} {:>9} {:>9.1}",
            name,
            get(&per_core[p]),
            min,
            max,
            get(&total) as f64 / f.n as f64
        );
    }
}
