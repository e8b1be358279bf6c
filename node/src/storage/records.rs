//! Small records the node stores for itself (not part of the wire protocol).

/// What happened to a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TxOutcome {
    /// Not known.
    Unknown = 0,
    /// Included in a block and applied.
    Committed = 1,
    /// Included in a block but failed (fees or nonce still consumed as the ledger decides).
    Failed = 2,
    /// Rejected before inclusion (mempool admission or re-check).
    Rejected = 3,
}

/// The transaction index entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxRecord {
    /// Height of the block that included it (0 if none).
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Position in the block.
    #[prost(uint32, tag = "2")]
    pub index: u32,
    /// The outcome.
    #[prost(enumeration = "TxOutcome", tag = "3")]
    pub outcome: i32,
    /// For people, empty for a plain "ok": why it failed or was rejected,
    /// or what a staking operation did (`ledger::Done`).
    #[prost(string, tag = "4")]
    pub reason: String,
}
