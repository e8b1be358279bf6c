//! Deciding a height: by a precommit quorum of this node's own round
//! (line 49) or by a synced block whose certificate verifies.

use super::{Consensus, Decision, Output, RejectReason};
use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::crypto::{Hash, Signature, vrf};
use crate::types::{Round, VoteType};
use agora_proto::v1 as pb;

impl Consensus {
    pub(super) fn decide(&mut self, round: Round, v: Hash, out: &mut Vec<Output>) {
        let Some(hs) = self.hs.as_mut() else { return };
        let set = &hs.params.validator_set;
        // The sum of the verified precommits is kept by the vote set.
        let Some((signers, aggregate)) = hs
            .votes
            .get(&(round, VoteType::Precommit))
            .and_then(|vs| vs.verified_aggregate(&Some(v)))
        else {
            return;
        };
        let Ok(certificate) =
            CommitCertificate::from_aggregate(set, hs.params.height, round, v, &signers, aggregate)
        else {
            return;
        };
        let Some(block) = hs.blocks.get(&v).cloned() else {
            return;
        };
        // Verified when the block arrived; a block only remembered from a
        // conflicting proposal is decoded here.
        let output = hs.vrf_outputs.get(&v).copied().or_else(|| {
            block
                .header
                .as_ref()
                .and_then(|h| Signature::from_bytes(&h.vrf_proof).ok())
                .map(|p| vrf::output(&p))
        });
        let Some(output) = output else { return };
        let seed = vrf::next_seed(&hs.params.prev_seed, &output);
        hs.decided = true;
        out.push(Output::Decided(Box::new(Decision {
            height: hs.params.height,
            round,
            block,
            block_hash: v,
            certificate,
            seed,
        })));
    }

    pub(super) fn on_synced(
        &mut self,
        block: pb::Block,
        cert: CommitCertificate,
        verified_against: Option<Hash>,
        out: &mut Vec<Output>,
    ) {
        let Some(hs) = self.hs.as_ref() else { return };
        if hs.decided || cert.height != hs.params.height {
            self.stats.ignored += 1;
            return;
        }
        let Some(header) = block.header.as_ref() else {
            return self.reject(RejectReason::Malformed("synced block without header"), out);
        };
        let hash = header_hash(header);
        let set = &hs.params.validator_set;
        let verdict = if verified_against == Some(set.hash()) {
            // Verified in a batch against this very set: only the binding
            // to this height and block is re-checked (no pairing).
            cert.matches(hs.params.height, &hash)
        } else {
            cert.verify_for(&self.chain, set, hs.params.height, &hash)
        };
        if let Err(e) = verdict {
            return self.reject(RejectReason::BadCertificate(e.to_string()), out);
        }
        self.stats.synced_certificates_verified += 1;
        // A synced block's VRF proof is not verified (more than 2/3 signed
        // its header, and each checked it before prevoting); only its
        // output is needed, which is the hash of its bytes: not decoded.
        let Ok(proof) = <&[u8; 96]>::try_from(header.vrf_proof.as_slice()) else {
            return self.reject(RejectReason::BadCertificate("vrf proof".into()), out);
        };
        let seed = vrf::next_seed(&hs.params.prev_seed, &vrf::output_of_bytes(proof));
        let decision = Decision {
            height: hs.params.height,
            round: cert.round,
            block,
            block_hash: hash,
            certificate: cert,
            seed,
        };
        if let Some(hs) = self.hs.as_mut() {
            hs.decided = true;
        }
        out.push(Output::Decided(Box::new(decision)));
    }
}
