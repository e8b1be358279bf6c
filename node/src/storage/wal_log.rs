//! The write-ahead log of the undecided height's consensus inputs (table
//! `wal`), and the records appended to it but not yet written.
//!
//! Why records wait in memory: a record appended without durability used
//! to be its own non-durable redb commit, about ten per height (the
//! proposal, its verdict, eight votes), each paying for a transaction and a
//! copy-on-write of the table's pages. Such a commit only becomes durable
//! with the next durable one, and redb's recovery after a crash (even a
//! `kill -9`) returns to the last durable commit, so the record was lost
//! with a crash before it either way. The records now wait in
//! [`WalPending`] and are written, in order, by the next write that needs
//! them ([`Storage::sync_wal`], [`Storage::commit_blocks`], a durable
//! append, or a reader of the log), in that write's transaction: what
//! survives a crash is exactly what did before.
//!
//! Bound: at most [`WAL_PENDING_MAX`] bytes wait (a term of
//! `memory::worst_case`); an append past it writes them (one non-durable
//! commit). In practice they never get near it: the
//! WAL sync before every proposal and precommit writes them, and the
//! commit of every height truncates them.

use std::sync::Mutex;

use redb::{Durability, ReadableTable, ReadableTableMetadata};

use super::{Storage, StorageError, WAL, wal_height};

/// Most bytes of WAL records kept in memory before they are written.
pub(crate) const WAL_PENDING_MAX: usize = 8 << 20;

/// WAL records appended but not yet written, oldest first: each is
/// height (8 bytes, big-endian) ‖ record, the table's value form.
#[derive(Debug, Default)]
pub(super) struct WalPending(Mutex<Pending>);

#[derive(Debug, Default)]
struct Pending {
    records: Vec<Vec<u8>>,
    bytes: usize,
}

impl WalPending {
    /// The records; a panic elsewhere while holding them leaves them whole
    /// (every change under the lock is a push or a take).
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a record; true if the queue is now past its bound.
    fn push(&self, value: Vec<u8>) -> bool {
        let mut p = self.lock();
        p.bytes += value.len();
        p.records.push(value);
        p.bytes > WAL_PENDING_MAX
    }

    fn is_empty(&self) -> bool {
        self.lock().records.is_empty()
    }

    /// Inserts every waiting record into the log in `txn`, after its last
    /// entry. Called inside the write transaction (after `begin_write`,
    /// which serialises writers), so records from any thread keep their
    /// append order. If the transaction then fails, the records are lost
    /// with it; the caller (the node's runner) stops on that error.
    pub(super) fn write_into(&self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        let records = {
            let mut p = self.lock();
            p.bytes = 0;
            std::mem::take(&mut p.records)
        };
        if records.is_empty() {
            return Ok(());
        }
        let mut t = txn.open_table(WAL)?;
        let first = t.last()?.map_or(0, |(k, _)| k.value() + 1);
        for (seq, v) in (first..).zip(&records) {
            t.insert(seq, v.as_slice())?;
        }
        Ok(())
    }
}

impl Storage {
    /// Makes every earlier WAL append durable.
    ///
    /// FSYNC: an `Immediate` commit that writes the waiting records; redb's
    /// durable commit also persists every earlier non-durable commit.
    pub fn sync_wal(&self) -> Result<(), StorageError> {
        self.write_with_wal(Durability::Immediate, |_| Ok(()))
    }

    /// Appends a consensus input of `height` to the WAL. With `durable`, the
    /// record (and every earlier one) is fsynced before this returns;
    /// without, it is written by the next write that needs the log (see
    /// the module docs) and is durable with the next durable one.
    pub fn wal_append(
        &self,
        height: u64,
        record: &[u8],
        durable: bool,
    ) -> Result<(), StorageError> {
        let mut v = Vec::with_capacity(8 + record.len());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(record);
        let over = self.wal_pending.push(v);
        if durable {
            self.sync_wal()
        } else if over {
            self.write_with_wal(Durability::None, |_| Ok(()))
        } else {
            Ok(())
        }
    }

    /// Writes the waiting records (one non-durable commit) so that readers
    /// of the table see every append.
    pub(super) fn write_pending_wal(&self) -> Result<(), StorageError> {
        if self.wal_pending.is_empty() {
            return Ok(());
        }
        self.write_with_wal(Durability::None, |_| Ok(()))
    }

    /// The WAL records in append order, with their heights.
    pub fn wal_records(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        Ok(self
            .wal_entries()?
            .into_iter()
            .map(|(_, h, r)| (h, r))
            .collect())
    }

    /// The WAL records in append order: (sequence number, height, record).
    ///
    /// Records are written by redb transactions, which are atomic: a crash
    /// in the middle of one leaves all its records or none, so the log has
    /// no torn tail and any record that does not decode is corruption,
    /// reported with its sequence number.
    pub fn wal_entries(&self) -> Result<Vec<(u64, u64, Vec<u8>)>, StorageError> {
        self.write_pending_wal()?;
        let raw = self.read(|txn| {
            txn.open_table(WAL)?
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })?;
        raw.into_iter()
            .map(|(seq, v)| {
                let h = wal_height(&v).ok_or_else(|| {
                    self.corrupt(
                        "wal record",
                        format!("record {seq} is shorter than 8 bytes"),
                    )
                })?;
                Ok((seq, h, v[8..].to_vec()))
            })
            .collect()
    }

    /// Number of WAL records.
    pub fn wal_len(&self) -> Result<u64, StorageError> {
        self.write_pending_wal()?;
        self.read(|txn| Ok(txn.open_table(WAL)?.len()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the bound, an append writes what waits (negative control: just
    /// under it, nothing is written yet).
    #[test]
    fn the_waiting_records_are_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let s = Storage::open(dir.path().join("db")).expect("open");
        let record = vec![7u8; 1 << 20];
        let fit = WAL_PENDING_MAX / (record.len() + 8);
        for _ in 0..fit {
            s.wal_append(1, &record, false).expect("append");
        }
        assert!(!s.wal_pending.is_empty(), "under the bound, records wait");
        s.wal_append(1, &record, false).expect("append");
        assert!(s.wal_pending.is_empty(), "past the bound, they are written");
        assert_eq!(s.wal_len().expect("len"), fit as u64 + 1);
    }
}
