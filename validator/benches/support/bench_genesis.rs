//! The genesis the ledger benches start from: funded accounts and one
//! validator (consensus key seeded 0xee, operator 0xef) with commission, so
//! the reward path runs. Shared by the `ledger` and `state_scaling` benches.

#![allow(dead_code)]

use agora_proto::v1 as pb;
use agora_validator::crypto::{AccountSecretKey, SecretKey};
use agora_validator::types::Address;

/// The bench chain's id.
pub const CHAIN: &str = "agora-bench";

/// The single validator's consensus key.
pub fn validator_key() -> SecretKey {
    SecretKey::from_seed(&[0xee; 32]).expect("seed")
}

/// `accounts` with 1,000,000,000 base units each, plus the validator's
/// operator, which self-bonds 10,000,000.
pub fn genesis(accounts: impl IntoIterator<Item = Address>) -> pb::Genesis {
    let val = validator_key();
    let op = Address::of_account(&AccountSecretKey::from_seed(&[0xef; 32]).public_key());
    let mut accounts: Vec<pb::GenesisAccount> = accounts
        .into_iter()
        .map(|a| pb::GenesisAccount {
            address: a.0.to_vec(),
            balance: "1000000000".into(),
        })
        .collect();
    accounts.push(pb::GenesisAccount {
        address: op.0.to_vec(),
        balance: "10000000".into(),
    });
    pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: None,
        accounts,
        validators: vec![pb::GenesisValidator {
            operator: op.0.to_vec(),
            consensus_public_key: val.public_key().to_bytes().to_vec(),
            proof_of_possession: val.prove_possession().to_bytes().to_vec(),
            self_bond: "10000000".into(),
            commission_rate_bps: 1_000,
            commission_max_rate_bps: 2_000,
            commission_max_change_bps: 100,
        }],
    }
}
