//! Follows the protocol, but pairs its own vote with a copy of an honest
//! validator's vote for the same message, the two signatures shifted by
//! +X and −X (X a random point of G2). Each copy fails alone; their sum is
//! the sum of the genuine pair, so a node that checks them only inside an
//! aggregate counts both as verified. The attack is not on safety (the
//! aggregate is right) but on the peers: a node holding the shifted copy
//! must neither reject the honest validator's real vote as a forgery nor
//! relay the copy to others as if it had checked it, or honest nodes
//! charge, and in the end ban, each other.

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::Height;
use agora_validator::crypto::bls::SIGNATURE_LEN;
use blst::{
    BLST_ERROR, blst_p2, blst_p2_add_or_double, blst_p2_affine, blst_p2_cneg, blst_p2_compress,
    blst_p2_from_affine, blst_p2_uncompress,
};
use rand::Rng;
use std::collections::BTreeMap;

/// The message a vote signs, as far as this behaviour cares.
type MessageKey = (Height, u32, i32, Vec<u8>);

#[derive(Default)]
pub(crate) struct Canceller {
    /// Per message, the first other validator's vote received for it, with
    /// the index of that validator.
    seen: BTreeMap<MessageKey, (usize, pb::Vote)>,
    /// Its own votes not sent yet: each waits for an honest vote to pair
    /// with (or for the next tick, when it goes out as it is).
    held: BTreeMap<MessageKey, pb::Vote>,
    sent: u64,
}

fn key(v: &pb::Vote) -> MessageKey {
    (v.height, v.round, v.vote_type, v.block_hash.clone())
}

/// `a + sign · b` for two compressed G2 points, or None if one does not decode.
fn shifted(a: &[u8], b: &[u8; SIGNATURE_LEN], negate: bool) -> Option<Vec<u8>> {
    let point = |bytes: &[u8]| {
        if bytes.len() != SIGNATURE_LEN {
            return None;
        }
        let mut affine = blst_p2_affine::default();
        let mut p = blst_p2::default();
        // SAFETY: both buffers are SIGNATURE_LEN bytes long; blst reads
        // exactly that many and writes only into the structs given.
        unsafe {
            if blst_p2_uncompress(&mut affine, bytes.as_ptr()) != BLST_ERROR::BLST_SUCCESS {
                return None;
            }
            blst_p2_from_affine(&mut p, &affine);
        }
        Some(p)
    };
    let (pa, mut pb) = (point(a)?, point(b)?);
    let mut sum = blst_p2::default();
    let mut out = [0u8; SIGNATURE_LEN];
    // SAFETY: every pointer is to an initialised local of the right type;
    // `out` holds the SIGNATURE_LEN bytes of a compressed G2 point.
    unsafe {
        blst_p2_cneg(&mut pb, negate);
        blst_p2_add_or_double(&mut sum, &pa, &pb);
        blst_p2_compress(out.as_mut_ptr(), &sum);
    }
    Some(out.to_vec())
}

impl Canceller {
    /// Our vote `v` to the victim as it is; to everyone else, shifted by
    /// +X and paired with the victim's vote `theirs` shifted by −X.
    fn attack(
        &mut self,
        cx: &mut Cx<'_>,
        v: &pb::Vote,
        victim: usize,
        theirs: &pb::Vote,
    ) -> Vec<Out> {
        let noise: [u8; 32] = cx.rng.random();
        let x = cx.key.sign(&noise).to_bytes();
        let (Some(mine), Some(forged)) = (
            shifted(&v.signature, &x, false),
            shifted(&theirs.signature, &x, true),
        ) else {
            return vec![Out::all(Wire::Vote(v.clone()))];
        };
        self.sent += 1;
        let mut out = vec![Out::to(victim, Wire::Vote(v.clone()))];
        for peer in (0..cx.n).filter(|p| *p != cx.me && *p != victim) {
            let ours = pb::Vote {
                signature: mine.clone(),
                ..v.clone()
            };
            let copy = pb::Vote {
                signature: forged.clone(),
                ..theirs.clone()
            };
            out.push(Out::to(peer, Wire::Vote(ours)).forged());
            out.push(Out::to(peer, Wire::Vote(copy)).forged());
        }
        out
    }
}

impl Byzantine for Canceller {
    fn received(&mut self, cx: &mut Cx<'_>, from: usize, wire: &Wire) -> Vec<Out> {
        let Wire::Vote(v) = wire else {
            return Vec::new();
        };
        if cx.own_vote(v)
            || cx
                .addresses
                .get(from)
                .is_none_or(|a| a.0 != v.validator_address[..])
        {
            return Vec::new();
        }
        let k = key(v);
        self.seen
            .entry(k.clone())
            .or_insert_with(|| (from, v.clone()));
        // Only the heights still being decided are of use.
        let keep_from = v.height.saturating_sub(1);
        self.seen.retain(|k, _| k.0 >= keep_from);
        match self.held.remove(&k) {
            Some(ours) => self.attack(cx, &ours, from, v),
            None => Vec::new(),
        }
    }

    fn vote(&mut self, cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        if !cx.own_vote(&v) {
            return vec![Out::all(Wire::Vote(v))];
        }
        match self.seen.get(&key(&v)).cloned() {
            Some((victim, theirs)) => self.attack(cx, &v, victim, &theirs),
            None => {
                self.held.insert(key(&v), v);
                Vec::new()
            }
        }
    }

    fn tick(&mut self, _cx: &mut Cx<'_>) -> Vec<Out> {
        std::mem::take(&mut self.held)
            .into_values()
            .map(|v| Out::all(Wire::Vote(v)))
            .collect()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("cancelling vote pairs sent", self.sent)]
    }
}
