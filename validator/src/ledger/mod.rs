//! The staking ledger: the application that gives stake its meaning
//! (DESIGN §8). Pure and deterministic: no I/O, no clock, no randomness of
//! its own, every collection ordered, all arithmetic on u128 checked.
//!
//! # How the node drives it
//!
//! ```text
//! let mut ledger = Ledger::from_genesis(&genesis)?;     // height 0
//! // header of block 1 carries ledger.app_hash()
//! ledger.begin_block(1)?;
//! for ev in &block.evidence { ledger.apply_evidence(ev)?; }  // slashes first
//! for tx in &block.txs { ledger.deliver_tx(tx); }            // receipts
//! let end = ledger.end_block()?;   // matured unbonding paid, set for h+2, app hash
//! ```
//!
//! or, in one call with batch signature verification,
//! [`Ledger::apply_block`]`(height, txs, evidence, randomness)`.
//!
//! - Block h: evidence is applied first, then the transactions in order,
//!   then unbonding entries whose completion height is h are paid out, then
//!   the active set is computed; it takes effect at h+2
//!   ([`EndBlock::next_validator_set`]). Sets for h+1 and h+2 are therefore
//!   always known after block h, and the sets of the evidence window behind.
//! - The header of block h carries the app hash of the state after block h−1
//!   ([`Ledger::app_hash`] before `begin_block(h)`); genesis is "after block 0".
//! - A transaction with a bad signature, wrong chain id, wrong nonce or from
//!   an unknown account is *rejected*: no state change. One that passes those
//!   but breaks a staking rule *fails*: its nonce is consumed (so it can
//!   never be replayed later, when it might succeed) and nothing else changes.
//! - [`Ledger::check_tx`] is the mempool's admission test: it accepts future
//!   nonces (up to [`MAX_NONCE_GAP`] ahead) and runs the full rule check for
//!   the next nonce.
//! - [`Ledger::encode`] / [`Ledger::decode`] snapshot the whole state between
//!   blocks; the app hash is SHA3-256 of that encoding.
//!
//! Costs (benches/ledger.rs, 1,000 transfers): executing them and hashing
//! the state takes about 1.5 ms; the rest is cryptography. Decoding checks
//! the subgroup of every key and signature (~110 µs a transaction idle), so a
//! host that already decoded a transaction at mempool admission should keep
//! the [`DecodedTx`] and use [`tx::verify_signatures`] +
//! [`Ledger::deliver_decoded`] instead of decoding twice.
//!
//! Invariant, checked by the property tests: `total_supply() +
//! slashed_total()` equals the genesis supply after every block.

pub mod amount;
pub mod params;
pub mod query;
pub mod slashing;
pub mod snapshot;
pub mod staking;
pub mod state;
pub mod tx;
pub mod validator_updates;

pub use params::{Params, ParamsError};
pub use query::{DelegationView, ValidatorView};
pub use slashing::{EvidenceError, Infraction};
pub use snapshot::SnapshotError;
pub use state::{Account, SlashEvent, UnbondingEntry};
pub use tx::{DecodedTx, TxError, TxKind};

use crate::crypto::{Hash, PublicKey, Signature, sha3_256};
use crate::types::{Address, ChainId, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;
use amount::parse_amount;
use state::{State, ValidatorRecord};
use std::collections::{BTreeMap, BTreeSet};

/// How far ahead of the account's next nonce the mempool may accept a transaction.
pub const MAX_NONCE_GAP: u64 = 64;
/// Most accounts a genesis file may fund.
pub const MAX_GENESIS_ACCOUNTS: usize = 1_000_000;
/// Most validators a genesis file may register.
pub const MAX_GENESIS_VALIDATORS: usize = 10_000;

/// Why a genesis file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The chain id is not valid.
    #[error("bad chain id: {0}")]
    ChainId(String),
    /// The parameters are not valid.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An account entry is malformed or repeated.
    #[error("genesis account #{index}: {reason}")]
    Account {
        /// Position in the file.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A validator entry is malformed, repeated, unfunded or lacks a valid proof of possession.
    #[error("genesis validator #{index}: {reason}")]
    Validator {
        /// Position in the file.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Too many entries.
    #[error("genesis has too many {0}")]
    TooMany(&'static str),
    /// The supply does not fit the voting-power arithmetic.
    #[error("total supply {supply} is too large for power_reduction {power_reduction}")]
    SupplyTooLarge {
        /// Total supply.
        supply: u128,
        /// The power reduction.
        power_reduction: u128,
    },
    /// No validator has at least one unit of voting power.
    #[error("no genesis validator has at least one unit of voting power")]
    NoActiveValidators,
}

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

/// What [`Ledger::check_tx`] learned about an admissible transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxCheck {
    /// The transaction's hash.
    pub hash: Hash,
    /// Its signer.
    pub signer: Address,
    /// Its nonce.
    pub nonce: u64,
    /// The signer's next nonce now; a larger `nonce` waits in the mempool.
    pub next_nonce: u64,
}

/// How a delivered transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// Executed.
    Ok,
    /// Passed authentication, broke a staking rule: nonce consumed, nothing else changed.
    Failed(TxError),
    /// Not valid for inclusion: no state change at all.
    Rejected(TxError),
}

/// The result of delivering one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// The transaction's hash.
    pub hash: Hash,
    /// How it ended.
    pub outcome: TxOutcome,
    /// A line for people ("ok" or the error).
    pub log: String,
}

impl TxReceipt {
    fn new(hash: Hash, outcome: TxOutcome) -> Self {
        let log = match &outcome {
            TxOutcome::Ok => "ok".to_string(),
            TxOutcome::Failed(e) | TxOutcome::Rejected(e) => e.to_string(),
        };
        Self { hash, outcome, log }
    }

    /// Whether it executed.
    pub fn is_ok(&self) -> bool {
        self.outcome == TxOutcome::Ok
    }
}

/// What the end of a block produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndBlock {
    /// The block's height.
    pub height: Height,
    /// Unbonding entries paid out at this height.
    pub matured: Vec<UnbondingEntry>,
    /// The validator set in effect at `height + 2`.
    pub next_validator_set: ValidatorSet,
    /// The app hash of the state after this block (carried by the header of `height + 1`).
    pub app_hash: Hash,
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
    /// Height of the block being executed, between `begin_block` and `end_block`.
    block: Option<Height>,
}

fn genesis_validator(
    index: usize,
    gv: &pb::GenesisValidator,
) -> Result<(Address, PublicKey, u128), GenesisError> {
    let bad = |reason: String| GenesisError::Validator { index, reason };
    let operator = Address::from_slice(&gv.operator).map_err(|e| bad(format!("operator: {e}")))?;
    let key = PublicKey::from_bytes(&gv.consensus_public_key)
        .map_err(|e| bad(format!("consensus public key: {e}")))?;
    let pop = Signature::from_bytes(&gv.proof_of_possession)
        .map_err(|e| bad(format!("proof of possession: {e}")))?;
    key.verify_possession(&pop)
        .map_err(|_| bad("proof of possession does not verify".into()))?;
    let bond = parse_amount(&gv.self_bond).map_err(|e| bad(format!("self_bond: {e}")))?;
    Ok((operator, key, bond))
}

impl Ledger {
    /// Builds the state at height 0 from a genesis file: funds the accounts,
    /// registers the validators (each proof of possession checked) with
    /// their self-bonds taken from their operators' balances, and computes
    /// the set in effect at heights 1 and 2.
    pub fn from_genesis(g: &pb::Genesis) -> Result<Self, GenesisError> {
        let chain_id =
            ChainId::new(g.chain_id.clone()).map_err(|e| GenesisError::ChainId(e.to_string()))?;
        let params = Params::from_proto(g.params.as_ref())?;
        if g.accounts.len() > MAX_GENESIS_ACCOUNTS {
            return Err(GenesisError::TooMany("accounts"));
        }
        if g.validators.len() > MAX_GENESIS_VALIDATORS {
            return Err(GenesisError::TooMany("validators"));
        }
        let mut accounts = BTreeMap::new();
        let mut supply: u128 = 0;
        for (index, a) in g.accounts.iter().enumerate() {
            let bad = |reason: String| GenesisError::Account { index, reason };
            let addr = Address::from_slice(&a.address).map_err(|e| bad(e.to_string()))?;
            let balance = parse_amount(&a.balance).map_err(|e| bad(format!("balance: {e}")))?;
            if accounts
                .insert(addr, Account { balance, nonce: 0 })
                .is_some()
            {
                return Err(bad(format!("duplicate account {addr}")));
            }
            supply = supply
                .checked_add(balance)
                .ok_or_else(|| bad("total supply overflows 128 bits".into()))?;
        }
        if supply / params.power_reduction > u128::from(crate::validator_set::MAX_TOTAL_POWER) {
            return Err(GenesisError::SupplyTooLarge {
                supply,
                power_reduction: params.power_reduction,
            });
        }
        let mut state = State {
            chain_id,
            params,
            height: 0,
            genesis_supply: supply,
            slashed_total: 0,
            accounts,
            validators: BTreeMap::new(),
            delegations: BTreeMap::new(),
            unbonding: BTreeMap::new(),
            next_unbonding_id: 0,
            slash_events: Vec::new(),
            validator_sets: BTreeMap::new(),
            maturity: BTreeSet::new(),
        };
        for (index, gv) in g.validators.iter().enumerate() {
            let bad = |reason: String| GenesisError::Validator { index, reason };
            let (operator, key, bond) = genesis_validator(index, gv)?;
            let address = Address::of(&key);
            if state.validators.contains_key(&address) {
                return Err(bad(format!("duplicate validator {address}")));
            }
            if bond < state.params.min_self_bond {
                return Err(bad(format!(
                    "self_bond {bond} is below min_self_bond {}",
                    state.params.min_self_bond
                )));
            }
            let acct = state
                .accounts
                .get_mut(&operator)
                .ok_or_else(|| bad(format!("operator {operator} has no genesis account")))?;
            acct.balance = acct.balance.checked_sub(bond).ok_or_else(|| {
                bad(format!(
                    "operator {operator} holds {} but self-bonds {bond}",
                    acct.balance
                ))
            })?;
            state.validators.insert(
                address,
                ValidatorRecord {
                    address,
                    operator,
                    public_key: key,
                    tokens: bond,
                    shares: bond,
                    jailed: false,
                    jailed_until: 0,
                    tombstoned: false,
                },
            );
            state.delegations.insert((operator, address), bond);
        }
        let set = validator_updates::compute_active_set(&state)
            .ok_or(GenesisError::NoActiveValidators)?;
        state.validator_sets.insert(1, set.clone());
        state.validator_sets.insert(2, set);
        Ok(Self { state, block: None })
    }

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

    /// Height at which the state is being changed: the block in progress, or the next one.
    fn working_height(&self) -> Height {
        self.block.unwrap_or(self.state.height.saturating_add(1))
    }

    /// Mempool admission: decodes, verifies the signature, requires an
    /// existing account and a nonce not behind (nor more than
    /// [`MAX_NONCE_GAP`] ahead of) the account's next nonce; for the next
    /// nonce itself, also runs every staking rule against the current state.
    pub fn check_tx(&self, tx: &pb::Transaction) -> Result<TxCheck, TxError> {
        self.check_tx_inner(tx, true)
    }

    /// The mempool's re-check after a commit: [`Ledger::check_tx`] without
    /// the signature check. Only for transactions that passed `check_tx`
    /// before: their signature cannot have become invalid, while nonces and
    /// balances can, and a BLS verification per pending transaction per
    /// block would cost more than the block itself.
    pub fn recheck_tx(&self, tx: &pb::Transaction) -> Result<TxCheck, TxError> {
        self.check_tx_inner(tx, false)
    }

    fn check_tx_inner(&self, tx: &pb::Transaction, verify: bool) -> Result<TxCheck, TxError> {
        let d = tx::decode(&self.state.chain_id, tx)?;
        if verify {
            d.verify_signature()?;
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
        if d.nonce == acct.nonce {
            staking::plan(&self.state, d.signer, &d.kind, self.working_height())?;
        }
        Ok(TxCheck {
            hash: d.hash,
            signer: d.signer,
            nonce: d.nonce,
            next_nonce: acct.nonce,
        })
    }

    /// Starts executing block `height` (the next one).
    pub fn begin_block(&mut self, height: Height) -> Result<(), BlockError> {
        if let Some(h) = self.block {
            return Err(BlockError::InProgress(h));
        }
        let expected = self.state.height.saturating_add(1);
        if height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: height,
            });
        }
        self.block = Some(height);
        Ok(())
    }

    /// Verifies evidence as if it were included in the next block, without
    /// applying it (for the evidence pool and `SubmitEvidence`).
    pub fn check_evidence(&self, ev: &pb::Evidence) -> Result<Infraction, EvidenceError> {
        slashing::verify_evidence(&self.state, ev, self.working_height())
    }

    /// Applies evidence in the block in progress: verifies it, then slashes,
    /// jails and tombstones each offender. Applying the same evidence twice
    /// fails with [`EvidenceError::AlreadyTombstoned`] and slashes nothing.
    pub fn apply_evidence(&mut self, ev: &pb::Evidence) -> Result<Vec<SlashEvent>, EvidenceError> {
        let current = self.block.ok_or(EvidenceError::NoBlockInProgress)?;
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
        let Some(height) = self.block else {
            return reject(TxError::Malformed("no block in progress".into()));
        };
        if !signature_ok {
            return reject(TxError::BadSignature);
        }
        let Some(acct) = self.state.accounts.get(&d.signer) else {
            return reject(TxError::UnknownAccount(d.signer));
        };
        if d.nonce != acct.nonce {
            return reject(TxError::WrongNonce {
                expected: acct.nonce,
                got: d.nonce,
            });
        }
        let outcome = match staking::plan(&self.state, d.signer, &d.kind, height) {
            Ok(effect) => {
                staking::apply(&mut self.state, effect);
                TxOutcome::Ok
            }
            Err(e) => TxOutcome::Failed(e),
        };
        if let Some(a) = self.state.accounts.get_mut(&d.signer) {
            a.nonce = a.nonce.saturating_add(1);
        }
        TxReceipt::new(d.hash, outcome)
    }

    /// Finishes the block in progress: pays matured unbonding entries,
    /// computes the set for `height + 2` (keeping the previous one if no
    /// validator qualifies), prunes sets outside the evidence window and
    /// returns the new app hash.
    pub fn end_block(&mut self) -> Result<EndBlock, BlockError> {
        let height = self.block.ok_or(BlockError::NoBlock)?;
        let target = height.saturating_add(2);
        // Payouts do not change bonded tokens, so the set can be computed first.
        let next = validator_updates::compute_active_set(&self.state)
            .or_else(|| {
                self.state
                    .validator_sets
                    .get(&height.saturating_add(1))
                    .cloned()
            })
            .ok_or(BlockError::NoValidatorSet(height.saturating_add(1)))?;
        self.block = None;
        let matured = staking::mature_unbonding(&mut self.state, height);
        self.state.validator_sets.insert(target, next.clone());
        // Evidence in the next block (height+1) may name heights down to
        // height + 2 − unbonding_period.
        let keep_from = height
            .saturating_add(2)
            .saturating_sub(self.state.params.unbonding_period);
        self.state.validator_sets = self.state.validator_sets.split_off(&keep_from);
        self.state.height = height;
        Ok(EndBlock {
            height,
            matured,
            next_validator_set: next,
            app_hash: self.app_hash(),
        })
    }

    /// Executes a whole block: evidence, then transactions (signatures
    /// batch-verified with the caller's `randomness`, one non-zero u64 per
    /// transaction; the outcome never depends on it), then `end_block`.
    pub fn apply_block(
        &mut self,
        height: Height,
        txs: &[pb::Transaction],
        evidence: &[pb::Evidence],
        randomness: &[u64],
    ) -> Result<BlockResult, BlockError> {
        self.apply_block_with_verified(height, txs, evidence, randomness, &|_| false)
    }

    /// [`Ledger::apply_block`] for a host that already verified some of the
    /// block's transactions: those whose hash `verified` accepts keep their
    /// signature as valid without a second BLS check. A transaction's hash
    /// covers its signature and its signing bytes depend only on the chain
    /// id, so a signature once valid for that hash stays valid. The outcome
    /// is the same as `apply_block`'s whenever `verified` tells the truth.
    pub fn apply_block_with_verified(
        &mut self,
        height: Height,
        txs: &[pb::Transaction],
        evidence: &[pb::Evidence],
        randomness: &[u64],
        verified: &dyn Fn(&Hash) -> bool,
    ) -> Result<BlockResult, BlockError> {
        self.begin_block(height)?;
        let evidence = evidence.iter().map(|e| self.apply_evidence(e)).collect();
        let decoded: Vec<Result<DecodedTx, (Hash, TxError)>> = txs
            .iter()
            .map(|t| tx::decode(&self.state.chain_id, t).map_err(|e| (crate::block::tx_hash(t), e)))
            .collect();
        let to_check: Vec<&DecodedTx> = decoded
            .iter()
            .filter_map(|d| d.as_ref().ok())
            .filter(|d| !verified(&d.hash))
            .collect();
        let rand: Vec<u64> = randomness.iter().take(to_check.len()).copied().collect();
        let mut verdicts = tx::verify_signatures(&to_check, &rand).into_iter();
        let mut receipts = Vec::with_capacity(txs.len());
        for d in &decoded {
            match d {
                Ok(d) => {
                    let ok = verified(&d.hash) || verdicts.next().unwrap_or(false);
                    receipts.push(self.deliver_decoded(d, ok));
                }
                Err((h, e)) => receipts.push(TxReceipt::new(*h, TxOutcome::Rejected(e.clone()))),
            }
        }
        let end = self.end_block()?;
        Ok(BlockResult {
            evidence,
            receipts,
            end,
        })
    }

    /// Commitment to the whole state: SHA3-256 of its canonical encoding.
    pub fn app_hash(&self) -> Hash {
        sha3_256(&snapshot::encode(&self.state))
    }

    /// The validator set in effect at `height`, if still kept (the evidence
    /// window behind the last block, and up to two heights ahead).
    pub fn validator_set(&self, height: Height) -> Option<&ValidatorSet> {
        self.state.validator_sets.get(&height)
    }

    /// Tokens in existence: balances, bonded and unbonding.
    pub fn total_supply(&self) -> u128 {
        // Bounded by the genesis supply, which fits; saturation is unreachable.
        self.state.total_supply().unwrap_or(u128::MAX)
    }

    /// Tokens burnt by slashing since genesis.
    pub fn slashed_total(&self) -> u128 {
        self.state.slashed_total
    }

    /// The supply at genesis.
    pub fn genesis_supply(&self) -> u128 {
        self.state.genesis_supply
    }

    /// An account (zero balance and nonce if it does not exist).
    pub fn account(&self, a: &Address) -> Account {
        self.state.account(a)
    }

    /// A validator.
    pub fn validator(&self, a: &Address) -> Option<ValidatorView> {
        self.state
            .validators
            .get(a)
            .map(|v| ValidatorView::new(&self.state, v))
    }

    /// Validators in address order, starting after `start_after`.
    pub fn validators(&self, start_after: Option<Address>, limit: usize) -> Vec<ValidatorView> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lo = start_after.map_or(Unbounded, Excluded);
        self.state
            .validators
            .range((lo, Unbounded))
            .take(query::page_limit(limit))
            .map(|(_, v)| ValidatorView::new(&self.state, v))
            .collect()
    }

    /// One delegation with its token value.
    pub fn delegation(&self, delegator: &Address, validator: &Address) -> Option<DelegationView> {
        self.state
            .delegations
            .get(&(*delegator, *validator))
            .map(|s| DelegationView::new(&self.state, *delegator, *validator, *s))
    }

    /// A delegator's delegations in validator order, starting after `start_after`.
    pub fn delegations(
        &self,
        delegator: &Address,
        start_after: Option<Address>,
        limit: usize,
    ) -> Vec<DelegationView> {
        use std::ops::Bound::{Excluded, Included};
        let d = *delegator;
        let lo = match start_after {
            Some(v) => Excluded((d, v)),
            None => Included((d, Address([0; 20]))),
        };
        self.state
            .delegations
            .range((lo, Included((d, Address([0xff; 20])))))
            .take(query::page_limit(limit))
            .map(|((d, v), s)| DelegationView::new(&self.state, *d, *v, *s))
            .collect()
    }

    /// A delegator's pending unbonding entries, by (validator, id), starting after `start_after`.
    pub fn unbonding(
        &self,
        delegator: &Address,
        start_after: Option<(Address, u64)>,
        limit: usize,
    ) -> Vec<UnbondingEntry> {
        use std::ops::Bound::{Excluded, Included};
        let d = *delegator;
        let lo = match start_after {
            Some((v, id)) => Excluded((d, v, id)),
            None => Included((d, Address([0; 20]), 0)),
        };
        self.state
            .unbonding
            .range((lo, Included((d, Address([0xff; 20]), u64::MAX))))
            .take(query::page_limit(limit))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Slash events in order, optionally of one validator, with ids after `start_after`.
    pub fn slash_events(
        &self,
        validator: Option<&Address>,
        start_after: Option<u64>,
        limit: usize,
    ) -> Vec<SlashEvent> {
        let from = start_after.map_or(0, |i| i.saturating_add(1));
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        self.state
            .slash_events
            .iter()
            .skip(from)
            .filter(|e| validator.is_none_or(|v| e.validator == *v))
            .take(query::page_limit(limit))
            .cloned()
            .collect()
    }

    /// The canonical encoding of the whole state (between blocks).
    pub fn encode(&self) -> Vec<u8> {
        snapshot::encode(&self.state)
    }

    /// Restores a ledger from [`Self::encode`] output, rejecting malformed bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        Ok(Self {
            state: snapshot::decode(bytes)?,
            block: None,
        })
    }
}

#[cfg(test)]
mod tests;
