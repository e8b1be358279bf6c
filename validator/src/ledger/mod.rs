//! The staking ledger: the application that gives stake its meaning
//! (DESIGN §8). Pure and deterministic: no I/O, no clock, no randomness of
//! its own, every collection ordered, all arithmetic on u128 checked.
//!
//! # How the node drives it
//!
//! ```text
//! let mut ledger = Ledger::from_genesis(&genesis)?;     // height 0
//! // header of block 1 carries ledger.app_hash()
//! ledger.begin_block(1, &BlockInfo::of_block(&block))?;  // downtime window
//! for ev in &block.evidence { ledger.apply_evidence(ev)?; }  // slashes first
//! for tx in &block.txs { ledger.deliver_tx(tx); }            // receipts
//! let end = ledger.end_block()?;   // rewards, matured unbonding, set for h+2, app hash
//! ```
//!
//! or, in one call with batch signature verification,
//! [`Ledger::apply_block`]`(height, info, txs, evidence, batch_seed)`.
//!
//! - Block h: evidence is applied first, then the transactions in order,
//!   then unbonding entries whose completion height is h are paid out, then
//!   the active set is computed; it takes effect at h+2
//!   ([`EndBlock::next_validator_set`]). Sets for h+1 and h+2 are therefore
//!   always known after block h, and the sets of the evidence window behind.
//! - The header of block h carries the app hash of the state after block h−1
//!   ([`Ledger::app_hash`] before `begin_block(h)`); genesis is "after block 0".
//! - A transaction with a bad signature, wrong chain id, wrong nonce, a fee
//!   below `min_fee` or that its account cannot pay, or from an unknown
//!   account is *rejected*: no state change, no fee. One that passes those
//!   but breaks a staking rule *fails*: it pays its fee and its nonce is
//!   consumed (so it can never be replayed later, when it might succeed),
//!   and nothing else changes.
//! - [`Ledger::check_tx`] is the mempool's admission test: it accepts future
//!   nonces (up to [`MAX_NONCE_GAP`] ahead) and runs the full rule check for
//!   the next nonce.
//! - [`Ledger::encode`] / [`Ledger::decode`] snapshot the whole state between
//!   blocks (tests, fuzzing, [`Ledger::state_digest`]). A node stores the
//!   state as its tree leaves instead: [`Ledger::leaves`] at genesis, then
//!   each block's [`EndBlock::state_changes`], and restores with
//!   [`Ledger::from_leaves`].
//!
//! Costs (benches/ledger.rs, 1,000 transfers): executing them and hashing
//! the state takes about 1.5 ms; the rest is cryptography (an Ed25519
//! account signature: decompressing the key and verifying it). Decode once:
//! a host that decoded and verified a transaction at mempool admission
//! keeps the [`DecodedTx`], re-checks it after each commit with
//! [`Ledger::recheck_decoded`] (state only) and hands it to
//! [`Ledger::apply_block_with_decoded`], which decodes and verifies only
//! the block's other transactions.
//!
//! Invariant, checked by the property tests after every block: genesis
//! supply + minted = balances + bonded + unbonding + unclaimed rewards +
//! burnt by slashing ([`Supply::balances_out`]).

pub mod amount;
mod commitment;
pub mod done;
pub mod downtime;
mod genesis;
pub mod invariants;
pub mod merkle;
pub mod params;
pub mod query;
mod receipt;
pub mod recheck;
pub mod rewards;
pub mod slashing;
pub mod snapshot;
pub mod staking;
pub mod state;
mod tracked;
pub mod tx;
pub mod validator_updates;

pub use done::Done;
pub use genesis::{GenesisError, MAX_GENESIS_ACCOUNTS, MAX_GENESIS_VALIDATORS};
pub use invariants::InvariantError;
pub use merkle::decode::LeafError;
pub use merkle::leaves::{LeafChange, LeafKey};
pub use params::{Params, ParamsError};
pub use query::{DelegationView, ValidatorView};
pub use receipt::{TxCheck, TxOutcome, TxReceipt};
pub use slashing::{EvidenceError, Infraction};
pub use snapshot::SnapshotError;
pub use state::{
    Account, Commission, JailReason, RedelegationEntry, SlashEvent, SlashReason, Supply,
    UnbondingEntry,
};
pub use tx::{DecodedTx, TxError, TxKind};

use crate::crypto::Hash;
use crate::types::{Address, ChainId, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use merkle::StateTree;
use state::State;
use std::borrow::Cow;

/// How far ahead of the account's next nonce the mempool may accept a transaction.
pub const MAX_NONCE_GAP: u64 = 64;

/// Why a block-level call was refused (the node called things out of order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// `begin_block` for a height other than the next one.
    #[error("expected block {expected}, got {got}")]
    WrongHeight {
        /// The next height.
        expected: Height,
        /// The height given.
        got: Height,
    },
    /// `begin_block` while a block is in progress.
    #[error("block {0} is still in progress")]
    InProgress(Height),
    /// A block call without `begin_block`.
    #[error("no block in progress")]
    NoBlock,
    /// No validator qualifies and no previous set exists (never happens:
    /// genesis stores the sets of heights 1 and 2, every block the one two ahead).
    #[error("no validator set for height {0}")]
    NoValidatorSet(Height),
}

/// What the host already holds of a block's transactions, so that
/// [`Ledger::apply_block_with_decoded`] neither hashes, decodes nor verifies
/// them again.
#[derive(Clone, Copy)]
pub struct KnownTxs<'a, 'k> {
    /// The hash of each transaction, in order, from the body check; used
    /// only if there is one per transaction.
    pub hashes: Option<&'a [Hash]>,
    /// The decoded, verified form of a transaction, by hash.
    pub decoded: &'a dyn Fn(&Hash) -> Option<&'k DecodedTx>,
}

/// What the ledger must know of a block besides its transactions and
/// evidence: who proposed it (for the proposer's bonus) and who signed the
/// certificate it carries (for the signers' rewards and the downtime window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// The proposer's address (`Header.proposer_address`).
    pub proposer: Option<Address>,
    /// Signer bitmap of the certificate of height − 1 that the block
    /// carries, over the validator set of height − 1 (`None` at height 1).
    /// The host has verified the certificate; the ledger only reads the bits.
    pub last_commit_signers: Option<Vec<u8>>,
}

impl BlockInfo {
    /// The information a block carries in its header and last commit.
    pub fn of_block(block: &pb::Block) -> Self {
        Self {
            proposer: block
                .header
                .as_ref()
                .and_then(|h| Address::from_slice(&h.proposer_address).ok()),
            last_commit_signers: block.last_commit.as_ref().map(|c| c.signers.clone()),
        }
    }
}

/// The block being executed, between `begin_block` and `end_block`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlockInProgress {
    height: Height,
    proposer: Option<Address>,
    /// Signers of the carried certificate with their power in its set.
    signers: Vec<(Address, crate::types::Power)>,
    /// Fees paid by the block's transactions so far.
    fees: u128,
    /// Validators jailed for downtime at the start of the block.
    downtime: Vec<SlashEvent>,
}

/// What the end of a block produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndBlock {
    /// The block's height.
    pub height: Height,
    /// Validators jailed and slashed for downtime by this block.
    pub downtime: Vec<SlashEvent>,
    /// Fees paid by the block's transactions.
    pub fees: u128,
    /// What each validator was credited from the block's pool (commission
    /// included), proposer bonus last.
    pub rewards: Vec<(Address, u128)>,
    /// Unbonding entries paid out at this height.
    pub matured: Vec<UnbondingEntry>,
    /// The validator set in effect at `height + 2`.
    pub next_validator_set: ValidatorSet,
    /// The app hash of the state after this block (carried by the header of `height + 1`).
    pub app_hash: Hash,
    /// The leaves this block changed (new value, or `None`: removed), in
    /// ascending key order within each kind: applied to the leaves of the
    /// state before the block they give exactly [`Ledger::leaves`] after
    /// it. What a node writes to its store per block.
    pub state_changes: Vec<LeafChange>,
}

/// The result of [`Ledger::apply_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockResult {
    /// One result per evidence item, in order.
    pub evidence: Vec<Result<Vec<SlashEvent>, EvidenceError>>,
    /// One receipt per transaction, in order.
    pub receipts: Vec<TxReceipt>,
    /// Payouts, the next set and the app hash.
    pub end: EndBlock,
}

/// The staking ledger. See the module documentation for how to drive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    state: State,
    /// The block being executed, between `begin_block` and `end_block`.
    block: Option<BlockInProgress>,
    /// The state's Merkle tree, moved on once per block (at `end_block`):
    /// its root is the app hash.
    tree: StateTree,
}

impl Ledger {
    /// The chain id.
    pub fn chain_id(&self) -> &ChainId {
        &self.state.chain_id
    }

    /// The staking parameters.
    pub fn params(&self) -> &Params {
        &self.state.params
    }

    /// Height of the last completed block (0 after genesis).
    pub fn height(&self) -> Height {
        self.state.height
    }

    /// The highest height whose validator set is decided: the set computed
    /// at the end of block h takes effect at h + 2, so no set past that is
    /// known yet.
    pub fn last_decided_set_height(&self) -> Height {
        self.state.height.saturating_add(2)
    }

    /// Height at which the state is being changed: the block in progress, or the next one.
    fn working_height(&self) -> Height {
        self.block
            .as_ref()
            .map_or(self.state.height.saturating_add(1), |b| b.height)
    }

    /// Mempool admission: decodes, verifies the signature, requires a fee of
    /// at least `min_fee`, an existing account that can pay it and a nonce
    /// not behind (nor more than [`MAX_NONCE_GAP`] ahead of) the account's
    /// next nonce; for the next nonce itself, also runs every staking rule
    /// against the current state with the fee paid.
    pub fn check_tx(&self, tx: &pb::Transaction) -> Result<TxCheck, TxError> {
        let d = tx::decode(&self.state.chain_id, tx)?;
        d.verify_signature()?;
        self.recheck_decoded(&d)
    }

    /// The state checks of [`Ledger::check_tx`] (fee, account, nonce,
    /// balance, staking rules) for a transaction already decoded and whose
    /// signature the caller verified: the mempool's admission after its
    /// batch check, and its re-check after each commit. No decoding, no
    /// signature check: a signature once valid for a transaction's hash
    /// stays valid, while nonces and balances change.
    pub fn recheck_decoded(&self, d: &DecodedTx) -> Result<TxCheck, TxError> {
        let min = self.state.params.min_fee;
        if d.fee < min {
            return Err(TxError::FeeTooLow { min, got: d.fee });
        }
        let acct = self
            .state
            .accounts
            .get(&d.signer)
            .ok_or(TxError::UnknownAccount(d.signer))?;
        if d.nonce < acct.nonce || d.nonce - acct.nonce > MAX_NONCE_GAP {
            return Err(TxError::WrongNonce {
                expected: acct.nonce,
                got: d.nonce,
            });
        }
        if acct.balance < d.fee {
            return Err(TxError::CannotPayFee {
                fee: d.fee,
                have: acct.balance,
            });
        }
        if d.nonce == acct.nonce {
            staking::plan(&self.state, d.signer, &d.kind, self.working_height(), d.fee)?;
        }
        Ok(TxCheck {
            hash: d.hash,
            signer: d.signer,
            nonce: d.nonce,
            next_nonce: acct.nonce,
            fee: d.fee,
        })
    }

    /// Starts executing block `height` (the next one): records the
    /// certificate it carries in every signer's downtime window (jailing
    /// and slashing those that missed too many) and remembers the proposer
    /// and signers for the rewards paid at `end_block`.
    pub fn begin_block(&mut self, height: Height, info: &BlockInfo) -> Result<(), BlockError> {
        if let Some(b) = &self.block {
            return Err(BlockError::InProgress(b.height));
        }
        let expected = self.state.height.saturating_add(1);
        if height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: height,
            });
        }
        let certified = height - 1;
        let mut signers = Vec::new();
        let mut downtime = Vec::new();
        if let (Some(bitmap), Some(set)) = (
            info.last_commit_signers.as_ref().filter(|_| certified > 0),
            self.state.validator_sets.get(&certified).cloned(),
        ) {
            signers = downtime::signers_of(&set, bitmap);
            downtime =
                downtime::record_certificate(&mut self.state, &set, bitmap, certified, height);
        }
        self.block = Some(BlockInProgress {
            height,
            proposer: info.proposer,
            signers,
            fees: 0,
            downtime,
        });
        Ok(())
    }

    /// Verifies evidence as if it were included in the next block, without
    /// applying it (for the evidence pool and `SubmitEvidence`).
    pub fn check_evidence(&self, ev: &pb::Evidence) -> Result<Infraction, EvidenceError> {
        slashing::verify_evidence(&self.state, ev, self.working_height())
    }

    /// [`Self::check_evidence`] for evidence whose signatures were checked
    /// on another thread: state checks only, and the set it was checked
    /// against must be this ledger's set of the infraction height.
    pub fn check_checked_evidence(
        &self,
        checked: &crate::consensus::CheckedEvidence,
    ) -> Result<Infraction, EvidenceError> {
        slashing::verify_checked_evidence(&self.state, checked, self.working_height())
    }

    /// Applies evidence in the block in progress: verifies it, then slashes,
    /// jails and tombstones each offender. Applying the same evidence twice
    /// fails with [`EvidenceError::AlreadyTombstoned`] and slashes nothing.
    pub fn apply_evidence(&mut self, ev: &pb::Evidence) -> Result<Vec<SlashEvent>, EvidenceError> {
        let current = self
            .block
            .as_ref()
            .ok_or(EvidenceError::NoBlockInProgress)?
            .height;
        let inf = slashing::verify_evidence(&self.state, ev, current)?;
        Ok(inf
            .offenders
            .iter()
            .filter_map(|o| {
                slashing::slash(&mut self.state, *o, inf.height, current, inf.evidence_hash)
            })
            .collect())
    }

    /// Executes one transaction in the block in progress (verifying its signature).
    pub fn deliver_tx(&mut self, tx: &pb::Transaction) -> TxReceipt {
        match tx::decode(&self.state.chain_id, tx) {
            Ok(d) => {
                let ok = d.verify_signature().is_ok();
                self.deliver_decoded(&d, ok)
            }
            Err(e) => TxReceipt::new(crate::block::tx_hash(tx), TxOutcome::Rejected(e)),
        }
    }

    /// Executes a decoded transaction whose signature verdict the caller
    /// computed (alone or in a batch, see [`tx::verify_signatures`]).
    pub fn deliver_decoded(&mut self, d: &DecodedTx, signature_ok: bool) -> TxReceipt {
        let reject = |e| TxReceipt::new(d.hash, TxOutcome::Rejected(e));
        let Some(block) = self.block.as_mut() else {
            return reject(TxError::Malformed("no block in progress".into()));
        };
        if !signature_ok {
            return reject(TxError::BadSignature);
        }
        let min = self.state.params.min_fee;
        if d.fee < min {
            return reject(TxError::FeeTooLow { min, got: d.fee });
        }
        let Some(acct) = self.state.accounts.get_mut(&d.signer) else {
            return reject(TxError::UnknownAccount(d.signer));
        };
        if d.nonce != acct.nonce {
            return reject(TxError::WrongNonce {
                expected: acct.nonce,
                got: d.nonce,
            });
        }
        // From here on the transaction is included: it pays its fee and
        // consumes its nonce whether or not the operation succeeds.
        let Some(after_fee) = acct.balance.checked_sub(d.fee) else {
            return reject(TxError::CannotPayFee {
                fee: d.fee,
                have: acct.balance,
            });
        };
        acct.balance = after_fee;
        acct.nonce = acct.nonce.saturating_add(1);
        // Fees are part of the supply, which fits in u128.
        block.fees = block.fees.saturating_add(d.fee);
        let height = block.height;
        match staking::plan(&self.state, d.signer, &d.kind, height, 0) {
            Ok(effect) => {
                let done = effect.done;
                staking::apply(&mut self.state, effect);
                TxReceipt::succeeded(d.hash, done)
            }
            Err(e) => TxReceipt::new(d.hash, TxOutcome::Failed(e)),
        }
    }

    /// Finishes the block in progress: mints the block reward and pays the
    /// block's rewards (see [`rewards`]), pays matured unbonding entries,
    /// completes matured redelegations, computes the set for `height + 2`
    /// (keeping the previous one if no validator qualifies), prunes sets
    /// outside the evidence window and returns the new app hash.
    pub fn end_block(&mut self) -> Result<EndBlock, BlockError> {
        let block = self.block.take().ok_or(BlockError::NoBlock)?;
        let height = block.height;
        let target = height.saturating_add(2);
        let reward = self.state.params.block_reward;
        // block_reward ≤ 2^60, so the minted total cannot overflow in 2^64 blocks.
        self.state.minted_total = self.state.minted_total.saturating_add(reward);
        let rewards = rewards::distribute(
            &mut self.state,
            reward.saturating_add(block.fees),
            block.proposer,
            &block.signers,
        );
        // Payouts do not change bonded tokens, so the set can be computed first.
        let next = validator_updates::compute_active_set(&self.state)
            .or_else(|| {
                self.state
                    .validator_sets
                    .get(&height.saturating_add(1))
                    .cloned()
            })
            .ok_or(BlockError::NoValidatorSet(height.saturating_add(1)))?;
        let matured = staking::mature_unbonding(&mut self.state, height);
        staking::mature_redelegations(&mut self.state, height);
        self.state.validator_sets.insert(target, next.clone());
        // Evidence in the next block (height+1) may name heights down to
        // height + 2 − unbonding_period.
        let keep_from = height
            .saturating_add(2)
            .saturating_sub(self.state.params.unbonding_period);
        self.state.validator_sets.remove_below(&keep_from);
        self.state.height = height;
        let (app_hash, state_changes) = self.seal();
        Ok(EndBlock {
            height,
            downtime: block.downtime,
            fees: block.fees,
            rewards,
            matured,
            next_validator_set: next,
            app_hash,
            state_changes,
        })
    }

    /// Executes a whole block: evidence, then transactions (signatures
    /// batch-verified with scalars drawn from the caller's `batch_seed`;
    /// the outcome never depends on it), then `end_block`.
    pub fn apply_block(
        &mut self,
        height: Height,
        info: &BlockInfo,
        txs: &[pb::Transaction],
        evidence: &[pb::Evidence],
        batch_seed: &[u8; 32],
    ) -> Result<BlockResult, BlockError> {
        let nothing = KnownTxs {
            hashes: None,
            decoded: &|_| None,
        };
        self.apply_block_with_decoded(height, info, txs, evidence, batch_seed, nothing)
    }

    /// [`Ledger::apply_block`] for a host that already decoded and verified
    /// some of the block's transactions (its mempool): `known` returns the
    /// [`DecodedTx`] of a transaction hash whose signature the host
    /// verified, and that transaction is neither decoded nor verified
    /// again. A transaction's hash covers its whole encoding and its
    /// signing bytes depend only on the chain id, so a signature once valid
    /// for that hash stays valid. The outcome is the same as
    /// `apply_block`'s whenever `known` tells the truth.
    pub fn apply_block_with_decoded<'k>(
        &mut self,
        height: Height,
        info: &BlockInfo,
        txs: &[pb::Transaction],
        evidence: &[pb::Evidence],
        batch_seed: &[u8; 32],
        known: KnownTxs<'_, 'k>,
    ) -> Result<BlockResult, BlockError> {
        // Hashes remembered from the body check, if they fit this body.
        let tx_hashes = known.hashes.filter(|h| h.len() == txs.len());
        let known = known.decoded;
        self.begin_block(height, info)?;
        let evidence = evidence.iter().map(|e| self.apply_evidence(e)).collect();
        let hashes: Cow<'_, [Hash]> = match tx_hashes {
            Some(h) => Cow::Borrowed(h),
            None => Cow::Owned(crate::block::tx_hashes(txs)),
        };
        debug_assert!(
            txs.iter()
                .zip(hashes.iter())
                .all(|(t, h)| crate::block::tx_hash(t) == *h)
        );
        let held: Vec<Option<&'k DecodedTx>> = hashes
            .iter()
            .map(|h| known(h).filter(|d| d.hash == *h))
            .collect();
        // What nobody verified yet is decoded and checked over the cores.
        let fresh: Vec<(&pb::Transaction, Hash)> = txs
            .iter()
            .zip(hashes.iter())
            .zip(&held)
            .filter(|(_, held)| held.is_none())
            .map(|((t, h), _)| (t, *h))
            .collect();
        let mut checked = tx::check_spread(&self.state.chain_id, &fresh, batch_seed).into_iter();
        let mut receipts = Vec::with_capacity(txs.len());
        for (h, held) in hashes.iter().zip(held) {
            receipts.push(match held {
                Some(d) => self.deliver_decoded(d, true),
                None => match checked.next().expect("a result per fresh transaction") {
                    Ok((d, ok)) => self.deliver_decoded(&d, ok),
                    Err(e) => TxReceipt::new(*h, TxOutcome::Rejected(e)),
                },
            });
        }
        let end = self.end_block()?;
        Ok(BlockResult {
            evidence,
            receipts,
            end,
        })
    }
}

#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_economics;
