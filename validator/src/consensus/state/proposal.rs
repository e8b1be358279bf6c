//! A proposal from the network: its header rules, its signature and the
//! block's VRF proof (checked together, once), and a second proposal of a
//! round turned into evidence.

use super::super::buffer::Buffered;
use super::super::evidence;
use super::{CarriedCommit, Consensus, Output, ProposalEntry, RejectReason, TestFault};
use crate::block::header_hash;
use crate::crypto::bls::WeightedItem;
use crate::crypto::{Hash, PublicKey, Signature, bls, sha3_256_parts, vrf};
use crate::lottery;
use crate::signing::{self, proposal_bytes};
use crate::types::{Address, Round};
use crate::validator_set::Validator;
use agora_proto::v1 as pb;

/// What a proposal's signature checks established.
struct Verified {
    /// The block's VRF output (its proof verified).
    vrf_output: Hash,
    /// The hash of the carried certificate, if its signature was checked
    /// with the proposal's.
    carried_commit_verified: Option<Hash>,
}

impl Verified {
    fn vrf_only(vrf_output: Hash) -> Self {
        Self {
            vrf_output,
            carried_commit_verified: None,
        }
    }
}

/// Which signatures one multi-pairing showed valid.
enum Together {
    /// The proposal's, the VRF proof and the carried certificate (if any).
    All,
    /// The proposal's and the VRF proof, not the carried certificate.
    ProposalAndVrf,
    /// Not shown: check one by one.
    Failed,
}

/// A proposal whose header fits the height, with what checking it needs.
struct Arrived {
    block_hash: Hash,
    /// The lottery's proposer of the round: the only allowed sender.
    proposer: Validator,
    /// The bytes the proposer signed.
    bytes: Vec<u8>,
    sig: Signature,
}

/// Rounds past the current one whose proposals are kept. A kept proposal's
/// block is held until its round falls behind ([`super::PAST_ROUNDS_KEPT`])
/// or longer (a later decision or re-proposal may need it), so with the 32
/// rounds ahead that votes may come from, a
/// proposer winning the next rounds' lotteries made every node hold 33
/// blocks of up to 4 MiB (decoded, up to 8× that) before any of those
/// rounds began (`node/src/memory.rs`). A node that reaches a round by a
/// skip without its proposal gets it from the re-gossip of the peers in
/// that round (every tick: the current round's proposal), or the decided
/// block by block sync, as CometBFT takes only the current round's.
pub const PROPOSAL_ROUNDS_AHEAD: Round = 1;

impl Consensus {
    /// A proposal from the network (the paper's `⟨PROPOSAL, h, r, v, vr⟩`):
    /// kept, and its block sent for validation, once its header fits the
    /// height and its signature and the block's VRF proof verify. A second
    /// proposal of a round is evidence.
    pub(super) fn on_proposal(&mut self, p: pb::Proposal, out: &mut Vec<Output>) {
        // Taken whatever happens next: an offer is for this proposal only.
        let offer = self.carried_offer.take();
        let (h, r) = (p.height, p.round);
        let Some(Buffered::Proposal(p)) = self.admit(h, r, Buffered::Proposal(Box::new(p))) else {
            return;
        };
        let p = *p;
        // Votes are taken up to `max_rounds_ahead` rounds ahead (they drive
        // the round skip); a proposal only up to PROPOSAL_ROUNDS_AHEAD, as
        // its block would be held until that round is behind (see the
        // constant).
        if r > self.round().saturating_add(PROPOSAL_ROUNDS_AHEAD) {
            self.stats.ignored += 1;
            return;
        }
        let Some(hs) = self.hs.as_ref() else { return };
        // Decided: the block is in hand and nothing more is voted here. A
        // host that decided by a synced block has applied it already and
        // would judge this one against the next height.
        if hs.decided {
            self.stats.ignored += 1;
            return;
        }
        let second = hs.proposals.contains_key(&r);
        let arrived = match self.arrive(&p) {
            Ok(Some(a)) => a,
            Ok(None) => return self.hold_valid_again(p), // a duplicate delivery
            Err(reason) => return self.reject(reason, out),
        };
        if second {
            return self.on_second_proposal(p, &arrived, out);
        }
        let carried = offer.filter(|c| c.block_hash == arrived.block_hash);
        match self.verify_fresh(&p, &arrived, carried.as_ref()) {
            Ok(verified) => self.keep_proposal(p, arrived.block_hash, verified, out),
            Err(reason) => self.reject(reason, out),
        }
    }

    /// A duplicate of a kept proposal whose block is the valid value but
    /// was released (a polka for a past round's block can be seen only
    /// after the block left the window: `rules.rs`,
    /// `raise_valid_on_past_polka`): the block is held again, so that this
    /// validator can propose it. Only the valid value's block, so the held
    /// blocks stay bounded. Its signature verified when it was first kept,
    /// and the engine checks every proposal's body against its header
    /// before the core sees it (`Engine::on_proposal`), so this is the
    /// block whose verdict is kept.
    fn hold_valid_again(&mut self, p: pb::Proposal) {
        let Some(hs) = self.hs.as_mut() else { return };
        let Some(entry) = hs.proposals.get(&p.round) else {
            return;
        };
        let hash = entry.block_hash;
        if hs.valid.is_some_and(|(v, _)| v == hash)
            && !hs.blocks.contains(&hash)
            && let Some(block) = p.block
        {
            hs.blocks.insert(hash, block, p.round);
        }
    }

    /// Makes the certificate carried by the block of the next proposal fed
    /// ready for that proposal's check (see [`CarriedCommit`]). Only a
    /// speed-up: without it the host verifies the certificate alone, with
    /// the same verdict, so an input log replayed without offers decides
    /// the same.
    pub fn offer_carried_commit(&mut self, carried: CarriedCommit) {
        self.carried_offer = Some(carried);
    }

    /// The checks that need no signature: the proposal comes from the
    /// round's proposer and its header fits the height. None for a duplicate
    /// delivery of the round's proposal.
    fn arrive(&self, p: &pb::Proposal) -> Result<Option<Arrived>, RejectReason> {
        let hs = self.hs.as_ref().expect("admitted: a height is under way");
        let (h, r) = (p.height, p.round);
        let block = p
            .block
            .as_ref()
            .ok_or(RejectReason::Malformed("proposal without block"))?;
        let header = block
            .header
            .as_ref()
            .ok_or(RejectReason::Malformed("block without header"))?;
        let expected = lottery::proposer(&hs.params.validator_set, &hs.params.prev_seed, h, r);
        if p.proposer_address != expected.address.0 {
            return Err(RejectReason::NotProposer {
                round: r,
                expected: expected.address,
                got: hex::encode(&p.proposer_address),
            });
        }
        if p.pol_round < -1 || i64::from(p.pol_round) >= i64::from(r) {
            return Err(RejectReason::Malformed("pol_round"));
        }
        if header.height != h {
            return Err(RejectReason::BadHeader("height"));
        }
        if header.chain_id != self.chain.as_str() {
            return Err(RejectReason::BadHeader("chain id"));
        }
        if header.parent_hash != hs.params.parent_hash {
            return Err(RejectReason::BadHeader("parent hash"));
        }
        let block_hash = header_hash(header);
        let existing = hs.proposals.get(&r);
        if existing.is_some_and(|e| e.signed.signature == p.signature && e.block_hash == block_hash)
        {
            return Ok(None);
        }
        let sig = Signature::from_bytes(&p.signature)
            .map_err(|_| RejectReason::BadSignature(expected.address.to_string()))?;
        Ok(Some(Arrived {
            block_hash,
            proposer: expected.clone(),
            bytes: proposal_bytes(&self.chain, h, r, p.pol_round, &block_hash),
            sig,
        }))
    }

    /// A second proposal for the round: only its signature matters, and
    /// with the first it is evidence of double signing.
    fn on_second_proposal(&mut self, p: pb::Proposal, a: &Arrived, out: &mut Vec<Output>) {
        if a.proposer.public_key.verify(&a.bytes, &a.sig).is_err() {
            return self.reject(
                RejectReason::BadSignature(a.proposer.address.to_string()),
                out,
            );
        }
        let Some(first) = self.hs.as_ref().and_then(|hs| hs.proposals.get(&p.round)) else {
            return;
        };
        let signed = evidence::signed_proposal(&p, &a.block_hash);
        let ev = evidence::conflicting_proposals(first.signed.clone(), signed);
        if let Some(ev) = self.evidence.admit(ev) {
            out.push(Output::EvidenceFound(ev));
            // Remember the second block too (once per round, so bounded):
            // other validators may lock on it, and its votes must count.
            if let (Some(hs), Some(block)) = (self.hs.as_mut(), p.block) {
                hs.blocks.insert(a.block_hash, block, p.round);
            }
        }
    }

    /// The checks of a round's first proposal that need its block's
    /// creator and the signatures; returns the block's VRF output, and the
    /// carried certificate's hash if its signature was checked here too.
    fn verify_fresh(
        &self,
        p: &pb::Proposal,
        a: &Arrived,
        carried: Option<&CarriedCommit>,
    ) -> Result<Verified, RejectReason> {
        let hs = self.hs.as_ref().expect("admitted: a height is under way");
        let header = p.block.as_ref().and_then(|b| b.header.as_ref());
        let header = header.expect("checked on arrival");
        let creator = self.block_creator(p, header, &a.proposer)?;
        // The proposal signature and the block's VRF proof, each checked
        // once: one randomised multi-pairing when both are new (with the
        // carried certificate when the host offered it), the signature
        // alone for a block whose proof was already verified.
        let bad_signature = || RejectReason::BadSignature(a.proposer.address.to_string());
        let signature_ok = || a.proposer.public_key.verify(&a.bytes, &a.sig).is_ok();
        if let Some(o) = hs.vrf_outputs.get(&a.block_hash) {
            return if signature_ok() {
                Ok(Verified::vrf_only(*o))
            } else {
                Err(bad_signature())
            };
        }
        let vrf_msg = signing::vrf_input(&self.chain, p.height, &hs.params.prev_seed);
        let Ok(proof) = Signature::from_bytes(&header.vrf_proof) else {
            // Reported after the signature, as a separate check would.
            return Err(if signature_ok() {
                RejectReason::BadVrf(creator.address)
            } else {
                bad_signature()
            });
        };
        let vrf_output = vrf::output(&proof);
        let proposal = (&a.proposer.public_key, &a.bytes[..], &a.sig);
        let vrf = (&creator.public_key, &vrf_msg[..], &proof);
        match self.verify_together(proposal, vrf, carried) {
            Together::All => {
                return Ok(Verified {
                    vrf_output,
                    carried_commit_verified: carried.map(|c| c.certificate_hash),
                });
            }
            // The certificate is bad; the host's own check will say so.
            Together::ProposalAndVrf => return Ok(Verified::vrf_only(vrf_output)),
            Together::Failed => {}
        }
        // Which one is bad (or, for an observer, the plain checks).
        if !signature_ok() {
            return Err(bad_signature());
        }
        if creator.public_key.verify(&vrf_msg, &proof).is_err() {
            return Err(RejectReason::BadVrf(creator.address));
        }
        Ok(Verified::vrf_only(vrf_output))
    }

    /// The proposal's signature, the VRF proof and the carried certificate
    /// (if offered) in one weighted multi-pairing; when that fails with a
    /// certificate in it, the first two again without it. An observer has
    /// no salt for the weights and checks nothing here.
    fn verify_together(
        &self,
        proposal: (&PublicKey, &[u8], &Signature),
        vrf: (&PublicKey, &[u8], &Signature),
        carried: Option<&CarriedCommit>,
    ) -> Together {
        let Some(salt) = self.verify_salt.as_ref() else {
            return Together::Failed;
        };
        let [vrf_weight, carried_weight] = check_weights(salt, proposal, vrf, carried);
        let mut items = vec![plain_item(proposal, 1), plain_item(vrf, vrf_weight)];
        if let Some(c) = carried {
            items.push(WeightedItem {
                key: &c.key,
                msg: &c.msg,
                hashed: self.signed.get(&c.msg),
                sig: &c.sig,
                weight: carried_weight,
            });
        }
        if bls::verify_weighted(&items).is_ok() {
            return Together::All;
        }
        if carried.is_some() && bls::verify_weighted(&items[..2]).is_ok() {
            return Together::ProposalAndVrf;
        }
        Together::Failed
    }

    /// The block's creator: the proposer itself for a fresh block, or the
    /// proposer of an earlier round for a re-proposed valid value.
    fn block_creator(
        &self,
        p: &pb::Proposal,
        header: &pb::Header,
        proposer: &Validator,
    ) -> Result<&Validator, RejectReason> {
        let hs = self.hs.as_ref().expect("admitted: a height is under way");
        let creator = Address::from_slice(&header.proposer_address)
            .map_err(|_| RejectReason::BadHeader("proposer address"))?;
        let fresh = p.pol_round == -1;
        if fresh && creator != proposer.address {
            return Err(RejectReason::BadHeader("fresh block from another proposer"));
        }
        // A fresh block names the round it is proposed in: auditors check
        // its proposer against the lottery of (height, proposal_round).
        if fresh
            && header.proposal_round != p.round
            && !ignores_header_rules(self.config.test_fault)
        {
            return Err(RejectReason::BadHeader("proposal round"));
        }
        hs.params
            .validator_set
            .get(&creator)
            .ok_or(RejectReason::BadHeader("block creator not a validator"))
    }

    /// Keeps a verified first proposal of its round and asks the host to
    /// validate its block (once per block).
    fn keep_proposal(
        &mut self,
        p: pb::Proposal,
        block_hash: Hash,
        verified: Verified,
        out: &mut Vec<Output>,
    ) {
        let signed = evidence::signed_proposal(&p, &block_hash);
        let (h, r) = (p.height, p.round);
        // Moved, not cloned: a block holds every transaction of the height.
        let Some(block) = p.block else { return };
        let Some(hs) = self.hs.as_mut() else { return };
        hs.vrf_outputs.insert(block_hash, verified.vrf_output);
        self.stats.carried_commits_verified +=
            u64::from(verified.carried_commit_verified.is_some());
        hs.proposals.insert(
            r,
            ProposalEntry {
                block_hash,
                pol_round: u32::try_from(p.pol_round).ok(),
                signed,
            },
        );
        if !hs.validity.contains_key(&block_hash) && hs.validation_requested.insert(block_hash) {
            out.push(Output::ValidateBlock {
                height: h,
                round: r,
                block: Box::new(block.clone()),
                carried_commit_verified: verified.carried_commit_verified,
            });
        }
        hs.blocks.insert(block_hash, block, r);
    }
}

/// One signature of a proposal's check, its message not hashed yet.
fn plain_item<'a>(
    (key, msg, sig): (&'a PublicKey, &'a [u8], &'a Signature),
    weight: u64,
) -> WeightedItem<'a> {
    WeightedItem {
        key,
        msg,
        hashed: None,
        sig,
        weight,
    }
}

/// Domain prefix of a proposal check's weights.
const PROPOSAL_WEIGHT_PREFIX: &[u8] = b"agora/proposal-check-weights/v2";

/// The weights of the VRF pair and of the carried certificate in a
/// proposal's multi-pairing ([`bls::verify_weighted`]; the proposal's own
/// signature has weight 1). The core has no randomness of its own, so they
/// are derived: SHA3-256 over a salt only this node knows (a one-way hash
/// of its secret key, never sent anywhere) and everything the proposer
/// chose (each signature, key and signed message), 8 bytes each, never
/// zero. The proposer fixes its bytes before the weights exist and cannot
/// compute them without the salt, so to it they are independent uniform
/// 64-bit values (random-oracle model).
///
/// Why that is sound: every signature is a subgroup-checked point of G2, a
/// group of prime order r, so write each as the valid signature plus an
/// error Δ. The product is one iff Δ₁ + w₂·Δ₂ + w₃·Δ₃ = 0. If Δ₂ or Δ₃ is
/// not zero, fixing everything else leaves one value of its weight mod r
/// that satisfies this, hit with probability 2⁻⁶⁴; if both are zero, Δ₁
/// must be too. So a pass means every signature is valid (a VRF proof so
/// checked is still *the* unique proof), each failed try is a rejected
/// proposal, and the verdict is a deterministic function of the inputs
/// (the simulator replays it).
fn check_weights<'a>(
    salt: &Hash,
    proposal: (&PublicKey, &'a [u8], &Signature),
    vrf: (&PublicKey, &'a [u8], &Signature),
    carried: Option<&'a CarriedCommit>,
) -> [u64; 2] {
    let part = |(key, msg, sig): (&PublicKey, &'a [u8], &Signature)| {
        let len = (msg.len() as u64).to_le_bytes();
        (key.to_bytes(), len, msg, sig.to_bytes())
    };
    let mut parts = vec![part(proposal), part(vrf)];
    if let Some(c) = carried {
        parts.push(part((&c.key, &c.msg, &c.sig)));
    }
    let mut input: Vec<&[u8]> = vec![PROPOSAL_WEIGHT_PREFIX, salt];
    for (key, len, msg, sig) in &parts {
        // Keys and signatures have fixed lengths; a message's length goes
        // first, so no two inputs are encoded alike.
        input.extend([&key[..], &sig[..], &len[..], msg]);
    }
    let h = sha3_256_parts(&input);
    let weight = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[8 * i..8 * i + 8]);
        u64::from_le_bytes(b).max(1)
    };
    [weight(0), weight(1)]
}

#[cfg(feature = "test-faults")]
fn ignores_header_rules(f: TestFault) -> bool {
    f == TestFault::IgnoreHeaderRules
}
#[cfg(not(feature = "test-faults"))]
fn ignores_header_rules(_: TestFault) -> bool {
    false
}
