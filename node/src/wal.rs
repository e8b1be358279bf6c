//! Encoding of consensus inputs for the write-ahead log, and replay.
//!
//! The driver appends every input of the current height (except
//! `StartHeight`, which is rebuilt from storage, and `SyncedBlock`, which
//! decides the height and is then stored as a block) before feeding it to the
//! core. After a crash it restores the signing state, sends `StartHeight` for
//! the first undecided height, then replays that height's WAL records in
//! order: the core rebuilds its vote sets, locks and round, and its
//! double-sign guard refuses to sign anything different from what it signed
//! before the crash. Our own block template (`ProposalContent`) is logged too,
//! so that a replayed proposal is the same proposal, not a refused new one.
//!
//! What is logged is bounded by the engine (`engine::wal_filter`): only
//! inputs the core took, each once. Each record is one redb transaction,
//! atomic, so a crash mid-append leaves no torn record: the log simply ends
//! before it. A record that does not decode is therefore corruption, and
//! [`replay_entries`] names it instead of starting from a partial log.

use agora_proto::v1 as pb;
use agora_validator::consensus::{Input, Timeout, TimeoutStep};
use agora_validator::{Hash, Height};
use prost::Message;

/// One WAL record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalRecord {
    /// The input.
    #[prost(oneof = "WalInput", tags = "1, 2, 3, 4, 5")]
    pub input: Option<WalInput>,
}

/// The inputs that are logged.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum WalInput {
    /// A proposal from the network.
    #[prost(message, tag = "1")]
    Proposal(pb::Proposal),
    /// A vote from the network.
    #[prost(message, tag = "2")]
    Vote(pb::Vote),
    /// A fired timeout.
    #[prost(message, tag = "3")]
    Timeout(WalTimeout),
    /// The host's verdict on a block.
    #[prost(message, tag = "4")]
    Validity(WalValidity),
    /// Our block template.
    #[prost(message, tag = "5")]
    Content(WalContent),
}

/// A fired timeout.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalTimeout {
    /// Height the timeout was scheduled at.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round the timeout was scheduled at.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// 0 propose, 1 prevote, 2 precommit.
    #[prost(uint32, tag = "3")]
    pub step: u32,
}

/// A block verdict.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalValidity {
    /// Height of the block the verdict is about.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round of the proposal that carried the block.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// Header hash of the block (32 bytes), the key of the verdict.
    #[prost(bytes = "vec", tag = "3")]
    pub block_hash: Vec<u8>,
    /// Whether the host found the block's content valid.
    #[prost(bool, tag = "4")]
    pub valid: bool,
}

/// Our block template.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalContent {
    /// Height the template was built for.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Round we proposed it in.
    #[prost(uint32, tag = "2")]
    pub round: u32,
    /// The block the host built; replay proposes this same block again.
    #[prost(message, optional, tag = "3")]
    pub block: Option<pb::Block>,
}

/// Why a WAL record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// Not a valid record.
    #[error("undecodable WAL record: {0}")]
    Decode(String),
    /// A stored record of the height to replay does not decode.
    #[error(
        "WAL record {seq} (height {height}) in {path} is corrupt: {detail}. The node will not start from a partial log of the height it was deciding. Do NOT delete the database: it holds the chain and this log, which lets the validator re-send what it signed and prove its lock (its signing state still guards against double signing). Stop here, keep a copy of the data directory, and restore it from a backup"
    )]
    Corrupt {
        /// Sequence number of the record in the WAL table.
        seq: u64,
        /// The height it was logged for.
        height: Height,
        /// The database file.
        path: std::path::PathBuf,
        /// Why it does not decode.
        detail: String,
    },
}

fn step_code(s: TimeoutStep) -> u32 {
    match s {
        TimeoutStep::Propose => 0,
        TimeoutStep::Prevote => 1,
        TimeoutStep::Precommit => 2,
    }
}

/// The record for an input, with its height; `None` for inputs not logged.
pub fn encode_input(input: &Input) -> Option<(Height, Vec<u8>)> {
    // A proposal or our template carries a whole block: its record is
    // written from the borrowed message, the same bytes as the `WalRecord`
    // holding a copy (tested), without copying every transaction.
    let (height, rec) = match input {
        Input::Proposal(p) => return Some((p.height, encode_borrowed(1, p))),
        Input::ProposalContent {
            height,
            round,
            block,
        } => return Some((*height, encode_content(*height, *round, block))),
        Input::Vote(v) => (v.height, WalInput::Vote(v.clone())),
        Input::TimeoutFired(t) => (
            t.height,
            WalInput::Timeout(WalTimeout {
                height: t.height,
                round: t.round,
                step: step_code(t.step),
            }),
        ),
        Input::BlockValidity {
            height,
            round,
            block_hash,
            valid,
        } => (
            *height,
            WalInput::Validity(WalValidity {
                height: *height,
                round: *round,
                block_hash: block_hash.to_vec(),
                valid: *valid,
            }),
        ),
        Input::StartHeight(_) | Input::SyncedBlock { .. } | Input::SigningResumed => return None,
    };
    Some((height, WalRecord { input: Some(rec) }.encode_to_vec()))
}

/// A `WalRecord` whose `input` is the message `m` under `tag`.
fn encode_borrowed(tag: u32, m: &impl Message) -> Vec<u8> {
    let len = prost::encoding::message::encoded_len(tag, m);
    let mut buf = Vec::with_capacity(len);
    prost::encoding::message::encode(tag, m, &mut buf);
    buf
}

/// A `WalRecord` holding `WalInput::Content` for `block`, field by field
/// as prost writes `WalContent` (proto3: zero scalars are left out).
fn encode_content(height: Height, round: u32, block: &pb::Block) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, message, uint32, uint64};
    let mut inner = message::encoded_len(3, block);
    if height != 0 {
        inner += uint64::encoded_len(1, &height);
    }
    if round != 0 {
        inner += uint32::encoded_len(2, &round);
    }
    let mut buf = Vec::with_capacity(inner + 16);
    encode_key(5, WireType::LengthDelimited, &mut buf);
    encode_varint(inner as u64, &mut buf);
    if height != 0 {
        uint64::encode(1, &height, &mut buf);
    }
    if round != 0 {
        uint32::encode(2, &round, &mut buf);
    }
    message::encode(3, block, &mut buf);
    buf
}

/// The input a record holds.
pub fn decode_input(bytes: &[u8]) -> Result<Input, WalError> {
    let rec = WalRecord::decode(bytes).map_err(|e| WalError::Decode(e.to_string()))?;
    Ok(
        match rec
            .input
            .ok_or_else(|| WalError::Decode("empty record".into()))?
        {
            WalInput::Proposal(p) => Input::Proposal(p),
            WalInput::Vote(v) => Input::Vote(v),
            WalInput::Timeout(t) => Input::TimeoutFired(Timeout {
                height: t.height,
                round: t.round,
                step: match t.step {
                    0 => TimeoutStep::Propose,
                    1 => TimeoutStep::Prevote,
                    2 => TimeoutStep::Precommit,
                    s => return Err(WalError::Decode(format!("timeout step {s}"))),
                },
            }),
            WalInput::Validity(v) => Input::BlockValidity {
                height: v.height,
                round: v.round,
                block_hash: Hash::try_from(v.block_hash.as_slice())
                    .map_err(|_| WalError::Decode("block hash not 32 bytes".into()))?,
                valid: v.valid,
            },
            WalInput::Content(c) => Input::ProposalContent {
                height: c.height,
                round: c.round,
                block: c
                    .block
                    .ok_or_else(|| WalError::Decode("content without block".into()))?,
            },
        },
    )
}

/// The inputs to replay for `height`, in append order, from the store's
/// entries (sequence number, height, record) of the database at `path`.
pub fn replay_entries(
    entries: &[(u64, Height, Vec<u8>)],
    height: Height,
    path: &std::path::Path,
) -> Result<Vec<Input>, WalError> {
    entries
        .iter()
        .filter(|(_, h, _)| *h == height)
        .map(|(seq, h, b)| {
            decode_input(b).map_err(|e| WalError::Corrupt {
                seq: *seq,
                height: *h,
                path: path.to_path_buf(),
                detail: match e {
                    WalError::Decode(d) => d,
                    other => other.to_string(),
                },
            })
        })
        .collect()
}

/// The inputs to replay for `height`, in append order, from stored records.
pub fn replay(records: &[(Height, Vec<u8>)], height: Height) -> Result<Vec<Input>, WalError> {
    records
        .iter()
        .filter(|(h, _)| *h == height)
        .map(|(_, b)| decode_input(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn inputs() -> Vec<Input> {
        vec![
            Input::Proposal(pb::Proposal {
                height: 4,
                round: 1,
                pol_round: -1,
                ..Default::default()
            }),
            Input::Vote(pb::Vote {
                vote_type: 1,
                height: 4,
                round: 1,
                ..Default::default()
            }),
            Input::TimeoutFired(Timeout {
                height: 4,
                round: 1,
                step: TimeoutStep::Precommit,
            }),
            Input::BlockValidity {
                height: 4,
                round: 1,
                block_hash: [3; 32],
                valid: true,
            },
            Input::ProposalContent {
                height: 4,
                round: 2,
                block: pb::Block::default(),
            },
        ]
    }

    fn same(a: &Input, b: &Input) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn inputs_survive_storage_and_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Storage::open(&path).unwrap();
            let (h, b) = encode_input(&Input::Vote(pb::Vote {
                height: 3,
                ..Default::default()
            }))
            .unwrap();
            s.wal_append(h, &b, false).unwrap();
            for i in inputs() {
                let (h, b) = encode_input(&i).unwrap();
                assert_eq!(h, 4);
                s.wal_append(h, &b, true).unwrap();
            }
        }
        let s = Storage::open(&path).unwrap();
        let got = replay(&s.wal_records().unwrap(), 4).unwrap();
        let want = inputs();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(a, b)| same(a, b)));
    }

    /// The records written from borrowed blocks are the bytes prost writes
    /// for a `WalRecord` holding copies, zero heights and rounds included.
    #[test]
    fn borrowed_records_are_the_owned_encoding() {
        let block = pb::Block {
            txs: vec![pb::Transaction {
                signature: vec![7; 64],
                ..Default::default()
            }],
            ..Default::default()
        };
        for (height, round) in [(4, 2), (0, 0), (9, 0), (0, 3)] {
            let owned = WalRecord {
                input: Some(WalInput::Content(WalContent {
                    height,
                    round,
                    block: Some(block.clone()),
                })),
            };
            let input = Input::ProposalContent {
                height,
                round,
                block: block.clone(),
            };
            assert_eq!(encode_input(&input).unwrap().1, owned.encode_to_vec());
            let p = pb::Proposal {
                height,
                round,
                pol_round: -1,
                block: Some(block.clone()),
                ..Default::default()
            };
            let owned = WalRecord {
                input: Some(WalInput::Proposal(p.clone())),
            };
            let got = encode_input(&Input::Proposal(p)).unwrap().1;
            assert_eq!(got, owned.encode_to_vec());
        }
    }

    #[test]
    fn a_corrupt_record_is_named_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Storage::open(&path).unwrap();
        let (h, b) = encode_input(&inputs()[0]).unwrap();
        s.wal_append(h, &b, false).unwrap();
        s.wal_append(h, &[0xff, 0xff, 0xff], true).unwrap();
        // Records of other heights are not read.
        s.wal_append(9, &[0xff], true).unwrap();
        let e = replay_entries(&s.wal_entries().unwrap(), 4, &path).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(
                e,
                WalError::Corrupt {
                    seq: 1,
                    height: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("Do NOT delete the database"), "{text}");
    }

    #[test]
    fn garbage_and_bad_fields_are_errors() {
        assert!(decode_input(&[0xff, 0xff]).is_err());
        assert!(decode_input(&[]).is_err());
        let bad = WalRecord {
            input: Some(WalInput::Timeout(WalTimeout {
                height: 1,
                round: 0,
                step: 9,
            })),
        };
        assert!(decode_input(&bad.encode_to_vec()).is_err());
    }
}
