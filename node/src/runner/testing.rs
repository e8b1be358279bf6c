//! The `[testing]` switches: Byzantine behaviour on purpose, for testnets
//! and tests of the honest side. Never on a real chain; each one is
//! announced with a loud warning at start.

use std::sync::Arc;

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::{Address, ChainId, SecretKey, VoteType};
use tracing::{error, warn};

use super::RunError;
use crate::config::TestingConfig;
use crate::node::Node;
use crate::storage::Storage;
use crate::transport::PeerId;

/// The storage flag that records the one conflicting vote of `double_sign_once`.
const DOUBLE_SIGNED_FLAG: &str = "testing.double_signed_once";
/// `double_sign_once` waits for this height (the chain must be going).
const DOUBLE_SIGN_FROM_HEIGHT: u64 = 3;

/// Logs a warning for every switch that is on.
pub(super) fn warn_if_on(t: &TestingConfig) {
    if !t.any() {
        return;
    }
    let line = "!".repeat(72);
    error!("{line}");
    if t.double_sign {
        error!(
            "testing.double_sign is ON: this validator double-signs at every height and will be slashed"
        );
    }
    if t.double_sign_once {
        error!(
            "testing.double_sign_once is ON: this validator double-signs once and will be slashed"
        );
    }
    if t.tamper_sync_bodies {
        error!("testing.tamper_sync_bodies is ON: this node serves forged blocks to syncing peers");
    }
    if t.tamper_snapshot_chunks {
        error!("testing.tamper_snapshot_chunks is ON: this node serves forged state-sync chunks");
    }
    if t.withhold_snapshot_chunk {
        error!(
            "testing.withhold_snapshot_chunk is ON: this node never serves one state-sync chunk"
        );
    }
    if t.clock_offset_ms != 0 {
        error!(
            offset_ms = t.clock_offset_ms,
            "testing.clock_offset_ms is ON: this node's clock is shifted"
        );
    }
    if t.drop_block_requests != 0 {
        error!(
            requests = t.drop_block_requests,
            "testing.drop_block_requests is ON: this node leaves its first block requests unanswered"
        );
    }
    error!("these are Byzantine faults on purpose; never set them on a real chain");
    error!("{line}");
}

/// The double signer the configuration asks for, if any.
pub(super) fn double_signer(node: &Node) -> Result<Option<DoubleSigner>, RunError> {
    let t = &node.config.testing;
    let (key, chain) = (node.key.clone(), node.chain.clone());
    Ok(if t.double_sign {
        Some(DoubleSigner::always(key, chain))
    } else if t.double_sign_once {
        Some(DoubleSigner::once(key, chain, node.storage.clone())?)
    } else {
        None
    })
}

/// Signs a nil prevote beside a prevote for a block, bypassing the
/// double-sign guard: always, or exactly once.
pub struct DoubleSigner {
    key: SecretKey,
    /// Our validator address: only our own votes get a twin.
    me: Address,
    chain: ChainId,
    /// For `once`: where "done" is kept, and whether it is.
    once: Option<(Arc<Storage>, bool)>,
}

impl DoubleSigner {
    /// At every prevote for a block.
    pub fn always(key: SecretKey, chain: ChainId) -> Self {
        Self {
            me: Address::of(&key.public_key()),
            key,
            chain,
            once: None,
        }
    }

    /// Once, at the first height ≥ 3 where we prevote for a block; "done"
    /// is a durable flag in `storage`, so a restart does not do it again.
    pub fn once(
        key: SecretKey,
        chain: ChainId,
        storage: Arc<Storage>,
    ) -> Result<Self, crate::storage::StorageError> {
        let done = storage.flag(DOUBLE_SIGNED_FLAG)?;
        Ok(Self {
            me: Address::of(&key.public_key()),
            key,
            chain,
            once: Some((storage, done)),
        })
    }

    /// The conflicting vote to send before `v`, if one is due. The host
    /// also re-gossips the other validators' votes of the height: those
    /// are not ours to twin (a "twin" of another's vote would carry our
    /// signature under its address, a forgery that peers charge to us).
    pub fn twin(&mut self, v: &pb::Vote) -> Option<pb::Vote> {
        if v.validator_address != self.me.as_bytes()
            || v.vote_type != VoteType::Prevote as i32
            || v.block_hash.iter().all(|b| *b == 0)
        {
            return None;
        }
        if let Some((storage, done)) = &mut self.once {
            if *done || v.height < DOUBLE_SIGN_FROM_HEIGHT {
                return None;
            }
            // Durable before the vote leaves: once means once, crash or not.
            if let Err(e) = storage.set_flag(DOUBLE_SIGNED_FLAG) {
                error!(error = %e, "testing.double_sign_once: cannot record it; not double-signing");
                return None;
            }
            *done = true;
        }
        let nil = [0u8; 32];
        let sig = self.key.sign(&agora_validator::signing::vote_bytes(
            &self.chain,
            VoteType::Prevote,
            v.height,
            v.round,
            &nil,
        ));
        warn!(
            height = v.height,
            round = v.round,
            "testing: sending a conflicting nil prevote (double signing on purpose)"
        );
        Some(pb::Vote {
            block_hash: nil.to_vec(),
            signature: sig.to_bytes().to_vec(),
            ..v.clone()
        })
    }
}

/// Forges the bodies of a block response, keeping every header and
/// certificate genuine: odd heights get a fabricated transaction, even
/// heights lose the certificate of their parent they carry (block 1 has
/// none, so it is odd). The header commits to the genuine body, so an
/// honest syncing node refuses every one of them.
pub fn forge_bodies(resp: &mut pb::BlockResponse) {
    for cb in &mut resp.blocks {
        let Some(block) = cb.block.as_mut() else {
            continue;
        };
        let h = block.header.as_ref().map_or(0, |hd| hd.height);
        if h % 2 == 1 || block.last_commit.is_none() {
            block.txs.push(pb::Transaction {
                body: Some(pb::TxBody {
                    chain_id: "forged by testing.tamper_sync_bodies".into(),
                    nonce: h,
                    ..Default::default()
                }),
                public_key: vec![7; 32],
                signature: vec![7; 64],
            });
        } else {
            block.last_commit = None;
        }
    }
}

/// `testing.tamper_sync_bodies`: what was served, to be sent again unasked.
#[derive(Debug, Default)]
pub(super) struct Tamper {
    owed: Vec<(PeerId, pb::BlockResponse)>,
}

impl Tamper {
    /// Forges `resp` before it is served to `peer`, and keeps a copy to
    /// send again unasked on the next tick.
    pub(super) fn forge(&mut self, peer: PeerId, resp: &mut pb::BlockResponse) {
        forge_bodies(resp);
        if self.owed.len() < 16 {
            self.owed.push((peer, resp.clone()));
        }
    }

    /// The unsolicited responses due now.
    pub(super) fn unsolicited(&mut self) -> Vec<(PeerId, PeerMessage)> {
        std::mem::take(&mut self.owed)
            .into_iter()
            .map(|(p, r)| {
                (
                    p,
                    PeerMessage {
                        kind: Some(Kind::BlockResponse(r)),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::block::list_hash;
    use agora_validator::engine::block_rules::check_body;
    use agora_validator::{CommitCertificate, Validator, ValidatorSet};

    /// A genuine block of height `h` (its body matches its header).
    fn genuine(h: u64) -> pb::CertifiedBlock {
        let key = SecretKey::from_seed(&[5; 32]).unwrap();
        let set = ValidatorSet::new(vec![Validator::new(key.public_key(), 1)]).unwrap();
        let parent = [h as u8; 32];
        let bytes = agora_validator::signing::vote_bytes(
            &ChainId::new("forge").unwrap(),
            VoteType::Precommit,
            h - 1,
            0,
            &parent,
        );
        let last = (h > 1).then(|| {
            CommitCertificate::from_precommits(&set, h - 1, 0, parent, &[(0, key.sign(&bytes))])
                .unwrap()
        });
        let header = pb::Header {
            height: h,
            txs_hash: list_hash::<pb::Transaction>(&[]).to_vec(),
            evidence_hash: list_hash::<pb::Evidence>(&[]).to_vec(),
            last_commit_hash: last.as_ref().map_or([0; 32], |c| c.hash()).to_vec(),
            ..Default::default()
        };
        pb::CertifiedBlock {
            block: Some(pb::Block {
                header: Some(header),
                last_commit: last.map(|c| c.to_proto()),
                ..Default::default()
            }),
            certificate: Some(pb::CommitCertificate::default()),
        }
    }

    /// A prevote for block `b` at height 7, round 1, signed by `key`.
    fn prevote(chain: &ChainId, key: &SecretKey, b: [u8; 32]) -> pb::Vote {
        let bytes = agora_validator::signing::vote_bytes(chain, VoteType::Prevote, 7, 1, &b);
        pb::Vote {
            vote_type: VoteType::Prevote as i32,
            height: 7,
            round: 1,
            block_hash: b.to_vec(),
            validator_address: Address::of(&key.public_key()).as_bytes().to_vec(),
            signature: key.sign(&bytes).to_bytes().to_vec(),
        }
    }

    /// The double signer twins only its own prevotes for a block, and the
    /// pair is evidence that verifies. The host re-gossips the others'
    /// votes through the same path: a twin of one of those would be a
    /// forgery under another's address, and the peers that paired it with
    /// the real vote charged us for bad evidence (the demo's step-6 flake).
    #[test]
    fn only_our_own_prevotes_get_a_twin_and_the_pair_is_valid_evidence() {
        let chain = ChainId::new("twin").unwrap();
        let (me, other) = (
            SecretKey::from_seed(&[1; 32]).unwrap(),
            SecretKey::from_seed(&[2; 32]).unwrap(),
        );
        let set = ValidatorSet::new(vec![
            Validator::new(me.public_key(), 1),
            Validator::new(other.public_key(), 1),
        ])
        .unwrap();
        let mut ds = DoubleSigner::always(me.clone(), chain.clone());
        assert!(
            ds.twin(&prevote(&chain, &other, [3; 32])).is_none(),
            "not ours"
        );
        assert!(ds.twin(&prevote(&chain, &me, [0; 32])).is_none(), "nil");
        let mut precommit = prevote(&chain, &me, [3; 32]);
        precommit.vote_type = VoteType::Precommit as i32;
        assert!(ds.twin(&precommit).is_none(), "precommit");
        let ours = prevote(&chain, &me, [3; 32]);
        let twin = ds.twin(&ours).expect("our prevote for a block");
        let ev = agora_validator::consensus::evidence::duplicate_vote(twin, ours);
        let info = agora_validator::consensus::evidence::verify_evidence(&chain, &set, &ev)
            .expect("the pair is valid evidence");
        assert_eq!(info.offenders, vec![Address::of(&me.public_key())]);
    }

    #[test]
    fn forged_bodies_keep_their_headers_and_fail_the_body_check() {
        let mut resp = pb::BlockResponse {
            blocks: (1..=4).map(genuine).collect(),
            latest_height: 4,
            lowest_height: 0,
        };
        for b in &resp.blocks {
            assert_eq!(check_body(b.block.as_ref().unwrap()), Ok(()));
        }
        let headers: Vec<_> = resp
            .blocks
            .iter()
            .map(|b| b.block.clone().unwrap().header)
            .collect();
        let mut tamper = Tamper::default();
        let peer = PeerId([9; 32]);
        tamper.forge(peer, &mut resp);
        for (b, header) in resp.blocks.iter().zip(&headers) {
            let block = b.block.as_ref().unwrap();
            assert_eq!(&block.header, header, "headers stay genuine");
            assert!(check_body(block).is_err(), "height {:?}", header);
        }
        let owed = tamper.unsolicited();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].0, peer);
        assert!(tamper.unsolicited().is_empty(), "sent once");
    }
}
