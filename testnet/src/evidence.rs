//! Committed evidence, as shown by the live view and the demo.
//!
//! The Query service has no evidence listing, but every piece of evidence a
//! block includes slashes at least one validator, and each slashing event
//! names the block that included it (`slash_height`) and the evidence's hash
//! (SHA3-256 of its encoding). So the most recent evidence is found by
//! reading the last slashing events and fetching only their blocks; blocks
//! never change, so each one is fetched once and cached.

use std::collections::HashMap;
use std::sync::Mutex;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::crypto::hash::sha3_256;
use prost::Message as _;
use tonic::transport::Channel;

/// Pages of slashing events read at most (a testnet slashes each validator
/// once, so this is far more than a run produces).
const MAX_EVENT_PAGES: usize = 20;
/// Events per page asked for.
const EVENT_PAGE: u32 = 200;

/// One committed piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRow {
    /// The offending validators (hex addresses), from the slashing events.
    pub validators: Vec<String>,
    /// `duplicate vote`, `conflicting proposals`, `conflicting certificates`,
    /// or why the kind is unknown.
    pub kind: String,
    /// Height of the infraction.
    pub height: u64,
    /// Round of the infraction (None when the block could not be read).
    pub round: Option<u32>,
    /// Height of the block that included it (and slashed).
    pub committed_at: u64,
    /// SHA3-256 of the encoded evidence (hex).
    pub hash: String,
    /// The two conflicting block hashes (hex; all zeros is a nil vote).
    pub conflicting: Option<(String, String)>,
}

/// What one piece of evidence says, read from its first half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `duplicate vote (prevote)`, `conflicting proposals`, ...
    pub kind: String,
    /// Height and round of the infraction, when both halves are present.
    pub at: Option<(u64, u32)>,
    /// The two conflicting block hashes (hex).
    pub conflicting: Option<(String, String)>,
}

/// Kind, height, round and the conflicting hashes of one piece of evidence.
pub fn describe(ev: &pb::Evidence) -> Described {
    use pb::evidence::Kind;
    let (kind, at, conflicting) = match &ev.kind {
        Some(Kind::DuplicateVote(d)) => match (&d.vote_a, &d.vote_b) {
            (Some(a), Some(b)) => {
                let t = match pb::VoteType::try_from(a.vote_type) {
                    Ok(pb::VoteType::Prevote) => "prevote",
                    Ok(pb::VoteType::Precommit) => "precommit",
                    _ => "vote",
                };
                (
                    format!("duplicate vote ({t})"),
                    Some((a.height, a.round)),
                    Some((hex::encode(&a.block_hash), hex::encode(&b.block_hash))),
                )
            }
            _ => ("duplicate vote (incomplete)".into(), None, None),
        },
        Some(Kind::ConflictingProposals(p)) => match (&p.proposal_a, &p.proposal_b) {
            (Some(a), Some(b)) => (
                "conflicting proposals".into(),
                Some((a.height, a.round)),
                Some((hex::encode(&a.block_hash), hex::encode(&b.block_hash))),
            ),
            _ => ("conflicting proposals (incomplete)".into(), None, None),
        },
        Some(Kind::ConflictingCertificates(c)) => match (&c.cert_a, &c.cert_b) {
            (Some(a), Some(b)) => (
                "conflicting certificates".into(),
                Some((a.height, a.round)),
                Some((hex::encode(&a.block_hash), hex::encode(&b.block_hash))),
            ),
            _ => ("conflicting certificates (incomplete)".into(), None, None),
        },
        None => ("empty evidence".into(), None, None),
    };
    Described {
        kind,
        at,
        conflicting,
    }
}

/// Hash of one piece of evidence, as slashing events record it.
pub fn evidence_hash(ev: &pb::Evidence) -> [u8; 32] {
    sha3_256(&ev.encode_to_vec())
}

/// Reads every slashing event (bounded by [`MAX_EVENT_PAGES`]), oldest first.
pub async fn all_slashes(
    c: &mut QueryClient<Channel>,
    validator: &[u8],
) -> Result<Vec<pb::SlashingEvent>, tonic::Status> {
    let mut all = Vec::new();
    let mut token = Vec::new();
    for _ in 0..MAX_EVENT_PAGES {
        let page = c
            .list_slashing_events(pb::ListSlashingEventsRequest {
                prove: false,
                validator: validator.to_vec(),
                page: Some(pb::PageRequest {
                    page_token: token,
                    limit: EVENT_PAGE,
                }),
            })
            .await?
            .into_inner();
        all.extend(page.events);
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(all)
}

/// Finds the evidence behind slashing events, caching what blocks showed.
#[derive(Default)]
pub struct EvidenceFinder {
    /// Keyed by evidence hash; only entries read from a block are cached.
    cache: Mutex<HashMap<Vec<u8>, EvidenceRow>>,
}

impl EvidenceFinder {
    /// The evidence behind the last `n` distinct evidence hashes of `events`
    /// (chronological order, as ListSlashingEvents returns them), newest
    /// first. A block that cannot be read gives a row without round or kind.
    pub async fn recent(
        &self,
        c: &mut QueryClient<Channel>,
        events: &[pb::SlashingEvent],
        n: usize,
    ) -> Vec<EvidenceRow> {
        // Newest first, one row per evidence (a certificate conflict slashes
        // several validators with one piece of evidence).
        let mut picked: Vec<(&pb::SlashingEvent, Vec<String>)> = Vec::new();
        for e in events.iter().rev() {
            if let Some((_, vs)) = picked
                .iter_mut()
                .find(|(p, _)| p.evidence_hash == e.evidence_hash)
            {
                vs.push(hex::encode(&e.validator));
            } else if picked.len() < n {
                picked.push((e, vec![hex::encode(&e.validator)]));
            }
        }
        let mut rows = Vec::with_capacity(picked.len());
        for (e, validators) in picked {
            let cached = self
                .cache
                .lock()
                .ok()
                .and_then(|m| m.get(&e.evidence_hash).cloned());
            let mut row = match cached {
                Some(r) => r,
                None => {
                    let r = self.read(c, e).await;
                    if r.round.is_some()
                        && let Ok(mut m) = self.cache.lock()
                    {
                        m.insert(e.evidence_hash.clone(), r.clone());
                    }
                    r
                }
            };
            row.validators = validators;
            rows.push(row);
        }
        rows
    }

    async fn read(&self, c: &mut QueryClient<Channel>, e: &pb::SlashingEvent) -> EvidenceRow {
        let mut row = EvidenceRow {
            validators: vec![hex::encode(&e.validator)],
            kind: "unknown (block not readable)".into(),
            height: e.infraction_height,
            round: None,
            committed_at: e.slash_height,
            hash: hex::encode(&e.evidence_hash),
            conflicting: None,
        };
        let block = match c
            .get_block(pb::GetBlockRequest {
                height: e.slash_height,
            })
            .await
        {
            Ok(r) => r.into_inner().block.unwrap_or_default(),
            Err(_) => return row,
        };
        match block
            .evidence
            .iter()
            .find(|ev| evidence_hash(ev).as_slice() == e.evidence_hash.as_slice())
        {
            Some(ev) => {
                let d = describe(ev);
                row.kind = d.kind;
                if let Some((h, r)) = d.at {
                    row.height = h;
                    row.round = Some(r);
                }
                row.conflicting = d.conflicting;
            }
            None => {
                row.kind = format!("not found in block {}", e.slash_height);
            }
        }
        row
    }
}
