//! Follows the protocol but, with each of its votes, also sends one piece
//! of junk to a random peer: random bytes, a signature that does not
//! decode, its own signature claimed in another validator's name, a valid
//! encoding signing other bytes, a proposal in someone else's name, or a
//! late precommit for the block it last committed in another validator's
//! name (which must not keep that validator's real one out of the
//! certificate the next proposer widens).

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::VoteType;
use prost::Message;
use rand::Rng;

pub(crate) struct Junk;

impl Byzantine for Junk {
    fn vote(&mut self, cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        let mut out = vec![Out::all(Wire::Vote(v.clone()))];
        if !cx.own_vote(&v) {
            return out;
        }
        let to = cx.rng.random_range(0..cx.n);
        let victim = cx.rng.random_range(0..cx.n);
        let wire = match cx.rng.random_range(0..6) {
            0 => {
                let len = cx.rng.random_range(0..200);
                Wire::Raw((0..len).map(|_| cx.rng.random()).collect())
            }
            1 => {
                let mut w = v.clone();
                w.signature = (0..96).map(|_| cx.rng.random()).collect();
                Wire::Vote(w)
            }
            2 => {
                let mut w = v.clone();
                w.validator_address = cx.addresses[victim].0.to_vec();
                Wire::Vote(w)
            }
            3 => {
                let mut w = v.clone();
                w.signature = cx.key.sign(b"junk").to_bytes().to_vec();
                Wire::Raw(w.encode_to_vec())
            }
            4 if victim != cx.me && cx.store.tip_height() > 0 => {
                let tip = cx.store.tip_height();
                let committed = &cx.store.blocks[&tip];
                Wire::Vote(pb::Vote {
                    vote_type: VoteType::Precommit as i32,
                    height: tip,
                    round: committed.certificate.round,
                    block_hash: committed.block_hash.to_vec(),
                    validator_address: cx.addresses[victim].0.to_vec(),
                    signature: cx.key.sign(b"junk").to_bytes().to_vec(),
                })
            }
            _ => {
                let block = pb::Block {
                    header: Some(pb::Header {
                        chain_id: cx.chain.as_str().to_string(),
                        height: v.height,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                Wire::Proposal(Box::new(pb::Proposal {
                    height: v.height,
                    round: v.round,
                    pol_round: -1,
                    block: Some(block),
                    proposer_address: cx.addresses[victim].0.to_vec(),
                    signature: cx.key.sign(b"junk").to_bytes().to_vec(),
                }))
            }
        };
        out.push(Out::to(to, wire).forged());
        out
    }
}
