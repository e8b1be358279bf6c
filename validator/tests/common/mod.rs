//! Helpers shared by the economics property tests: keys, a genesis with
//! commission, signing, block information with a certificate bitmap, and
//! double-sign evidence.
#![allow(dead_code)]

pub use agora_proto::v1 as pb;
use agora_validator::crypto::Hash;
pub use agora_validator::crypto::{AccountSecretKey, SecretKey};
use agora_validator::ledger::{BlockInfo, Ledger, tx};
use agora_validator::signing::vote_bytes;
pub use agora_validator::types::Address;
pub use agora_validator::types::HasAddress;
use agora_validator::types::{ChainId, Height, VoteType};
use pb::tx_body::Kind;
use proptest::prelude::TestCaseError;

pub const UNIT: u128 = 1_000_000;
pub const CHAIN: &str = "agora-econ-props";
pub const FEE: u128 = 1_000;
pub const REWARD: u128 = 1_000_003;
pub const UNBONDING: u64 = 5;

pub fn sk(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
}
/// An Ed25519 account key.
pub fn acct(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}
pub fn addr(k: &impl HasAddress) -> Address {
    k.address()
}
pub fn chain() -> ChainId {
    ChainId::new(CHAIN).expect("chain id")
}
/// Signers: users 1..=4 and the operators 101..=103 of validators 201..=203.
pub const SIGNERS: [u8; 7] = [1, 2, 3, 4, 101, 102, 103];
pub fn signer(i: usize) -> AccountSecretKey {
    acct(SIGNERS[i % SIGNERS.len()])
}
pub fn val(i: usize) -> Address {
    addr(&sk(201 + (i % 3) as u8))
}
pub fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

pub fn genesis(params: pb::GenesisParams, commission: (u32, u32, u32), n: u8) -> pb::Genesis {
    let mut accounts: Vec<pb::GenesisAccount> = (1..=4)
        .map(|i| pb::GenesisAccount {
            address: addr(&acct(i)).0.to_vec(),
            balance: (1000 * UNIT + u128::from(i) * 7).to_string(),
        })
        .collect();
    let mut validators = Vec::new();
    for i in 0..n {
        let (op, c) = (acct(101 + i), sk(201 + i));
        accounts.push(pb::GenesisAccount {
            address: addr(&op).0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        validators.push(pb::GenesisValidator {
            operator: addr(&op).0.to_vec(),
            consensus_public_key: c.public_key().to_bytes().to_vec(),
            proof_of_possession: c.prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT * (u128::from(i) + 1) + 3).to_string(),
            commission_rate_bps: commission.0,
            commission_max_rate_bps: commission.1,
            commission_max_change_bps: commission.2,
        });
    }
    pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Some(params),
        accounts,
        validators,
    }
}

pub fn sign(k: &AccountSecretKey, nonce: u64, fee: u128, kind: Kind) -> pb::Transaction {
    let body = pb::TxBody {
        chain_id: CHAIN.into(),
        nonce,
        fee: fee.to_string(),
        kind: Some(kind),
    };
    tx::sign(k, &chain(), body)
}

/// Block info: `proposer`, and (from height 2) the previous height's
/// certificate without the genesis validators whose bit is set in `absent`.
pub fn info(l: &Ledger, proposer: Option<Address>, absent: u8) -> BlockInfo {
    let h = l.height() + 1;
    let bitmap = (h > 1).then(|| {
        let set = l.validator_set(h - 1).expect("set of h-1");
        let mut bits = vec![0u8; set.len().div_ceil(8)];
        for (i, v) in set.validators().iter().enumerate() {
            let missing = (0..3).any(|j| absent >> j & 1 == 1 && val(j) == v.address);
            if !missing {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        bits
    });
    BlockInfo {
        proposer,
        last_commit_signers: bitmap,
    }
}

pub fn duplicate_vote(k: &SecretKey, h: Height) -> pb::Evidence {
    let vote = |hash: Hash| pb::Vote {
        vote_type: VoteType::Precommit as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: addr(k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Precommit, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(vote([0x11; 32])),
                vote_b: Some(vote([0x22; 32])),
            },
        )),
    }
}
