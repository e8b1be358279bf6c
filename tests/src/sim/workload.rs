//! The seeded workload: the users' transfers, bonds and unbonds.
//!
//! Users bond only to honest validators and unbond only what they bonded,
//! so the Byzantine share of the power never grows, while the validator set
//! changes every few heights. Each user signs its transactions in nonce
//! order; every one of them is valid when its turn comes (amounts are far
//! below the balances, unbonds never exceed the user's own shares at the
//! honest validators' 1:1 exchange rate, which nothing slashes).

use super::genesis::{SimGenesis, UNIT};
use agora_proto::v1 as pb;
use agora_validator::ledger::tx;
use agora_validator::{AccountSecretKey, Address, ChainId, HasAddress};
use pb::tx_body::Kind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Fee every workload transaction pays (the default `min_fee`).
pub const FEE: u128 = 1_000;
/// Unbonding entries a (delegator, validator) pair may hold at most.
const MAX_UNBONDS: u32 = 7;

struct User {
    key: AccountSecretKey,
    nonce: u64,
    /// Shares bonded per honest validator, as this user's own books say.
    bonded: BTreeMap<Address, u128>,
    unbonds: BTreeMap<Address, u32>,
}

/// The workload of one seed.
pub struct Workload {
    rng: ChaCha8Rng,
    chain: ChainId,
    users: Vec<User>,
    /// Transfer recipients: users and operators.
    recipients: Vec<Address>,
    honest_validators: Vec<Address>,
    /// Transactions generated.
    pub generated: u64,
}

impl Workload {
    /// The workload of `seed` over `genesis`; `honest` marks honest validators.
    pub fn new(seed: u64, genesis: &SimGenesis, honest: &[bool]) -> Self {
        let users: Vec<User> = genesis
            .users
            .iter()
            .map(|k| User {
                key: k.clone(),
                nonce: 0,
                bonded: BTreeMap::new(),
                unbonds: BTreeMap::new(),
            })
            .collect();
        let recipients = genesis
            .users
            .iter()
            .map(|u| u.address())
            .chain(genesis.operators.iter().map(|o| o.address()))
            .collect();
        let honest_validators = genesis
            .addresses
            .iter()
            .zip(honest)
            .filter(|(_, h)| **h)
            .map(|(a, _)| *a)
            .collect();
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0077_0a11_0ad0),
            chain: genesis.chain.clone(),
            users,
            recipients,
            honest_validators,
            generated: 0,
        }
    }

    /// A random delay until the next transaction, around `mean_ms`.
    pub fn next_delay(&mut self, mean_ms: u64) -> u64 {
        self.rng.random_range(1..=2 * mean_ms.max(1))
    }

    /// The next transaction, and a number the simulator uses to pick the
    /// node it is submitted to.
    pub fn next_tx(&mut self) -> (pb::Transaction, u64) {
        let u = self.rng.random_range(0..self.users.len());
        let pick: u32 = self.rng.random_range(0..10);
        let kind = match pick {
            0 | 1 if !self.honest_validators.is_empty() => {
                let i = self.rng.random_range(0..self.honest_validators.len());
                let v = self.honest_validators[i];
                let amount = UNIT * self.rng.random_range(1..=2u128);
                *self.users[u].bonded.entry(v).or_default() += amount;
                Kind::Bond(pb::Bond {
                    validator: v.0.to_vec(),
                    amount: amount.to_string(),
                })
            }
            2 | 3 => self.unbond(u).unwrap_or_else(|| self.transfer()),
            _ => self.transfer(),
        };
        let user = &mut self.users[u];
        let body = pb::TxBody {
            chain_id: self.chain.as_str().to_string(),
            nonce: user.nonce,
            fee: FEE.to_string(),
            kind: Some(kind),
        };
        user.nonce += 1;
        self.generated += 1;
        (tx::sign(&user.key, &self.chain, body), self.rng.random())
    }

    fn transfer(&mut self) -> Kind {
        let to = self.recipients[self.rng.random_range(0..self.recipients.len())];
        Kind::Transfer(pb::Transfer {
            to: to.0.to_vec(),
            amount: self.rng.random_range(1..=1_000u128).to_string(),
        })
    }

    fn unbond(&mut self, u: usize) -> Option<Kind> {
        let user = &mut self.users[u];
        let (v, shares) = user
            .bonded
            .iter()
            .find(|(v, s)| **s > 0 && user.unbonds.get(*v).copied().unwrap_or(0) < MAX_UNBONDS)
            .map(|(v, s)| (*v, *s))?;
        let amount = if shares > UNIT && self.rng.random_bool(0.5) {
            shares / 2
        } else {
            shares
        };
        *user.bonded.get_mut(&v)? -= amount;
        *user.unbonds.entry(v).or_default() += 1;
        Some(Kind::Unbond(pb::Unbond {
            validator: v.0.to_vec(),
            shares: amount.to_string(),
        }))
    }
}
