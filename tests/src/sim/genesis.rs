//! The genesis of one seed: validators with BLS consensus keys and their
//! Ed25519 operator accounts (funded, self-bonded), and funded user
//! accounts for the workload.

use agora_proto::v1 as pb;
use agora_validator::crypto::{Hash, sha3_256, vrf};
use agora_validator::ledger::Ledger;
use agora_validator::{AccountSecretKey, Address, ChainId, HasAddress, SecretKey, ValidatorSet};
use prost::Message;

/// Base units per unit of voting power (the default `power_reduction`).
pub const UNIT: u128 = 1_000_000;
/// Users funded at genesis.
pub const USERS: usize = 4;
/// What each user holds at genesis.
pub const USER_BALANCE: u128 = 1_000 * UNIT;
/// What each operator holds besides its self-bond.
pub const OPERATOR_SPARE: u128 = 10 * UNIT;
/// The simulated chain.
pub const CHAIN: &str = "agora-sim";

/// Keys and the genesis state of one seed.
pub struct SimGenesis {
    /// The chain id.
    pub chain: ChainId,
    /// seed_0.
    pub seed0: Hash,
    /// The state at height 0.
    pub ledger: Ledger,
    /// BLS key seed per validator (node index).
    pub consensus_seeds: Vec<[u8; 32]>,
    /// Consensus address per validator.
    pub addresses: Vec<Address>,
    /// Operator account key per validator.
    pub operators: Vec<AccountSecretKey>,
    /// The workload's accounts.
    pub users: Vec<AccountSecretKey>,
}

/// The BLS key of a seed.
pub fn secret(seed: &[u8; 32]) -> SecretKey {
    SecretKey::from_seed(seed).expect("32-byte seed is a valid key seed")
}

impl SimGenesis {
    /// Validators of the given powers, keys derived from `seed`.
    pub fn new(seed: u64, powers: &[u64]) -> Self {
        let chain = ChainId::new(CHAIN).expect("valid chain id");
        let consensus_seeds: Vec<[u8; 32]> = (0..powers.len())
            .map(|i| sha3_256(format!("sim-key-{seed}-{i}").as_bytes()))
            .collect();
        let operators: Vec<AccountSecretKey> = (0..powers.len())
            .map(|i| {
                AccountSecretKey::from_seed(&sha3_256(format!("sim-op-{seed}-{i}").as_bytes()))
            })
            .collect();
        let users: Vec<AccountSecretKey> = (0..USERS)
            .map(|u| {
                AccountSecretKey::from_seed(&sha3_256(format!("sim-user-{seed}-{u}").as_bytes()))
            })
            .collect();
        let mut accounts: Vec<pb::GenesisAccount> = users
            .iter()
            .map(|u| pb::GenesisAccount {
                address: u.address().0.to_vec(),
                balance: USER_BALANCE.to_string(),
            })
            .collect();
        let mut validators = Vec::new();
        let mut addresses = Vec::new();
        for ((ks, op), power) in consensus_seeds.iter().zip(&operators).zip(powers) {
            let key = secret(ks);
            let bond = u128::from(*power) * UNIT;
            accounts.push(pb::GenesisAccount {
                address: op.address().0.to_vec(),
                balance: (bond + OPERATOR_SPARE).to_string(),
            });
            validators.push(pb::GenesisValidator {
                operator: op.address().0.to_vec(),
                consensus_public_key: key.public_key().to_bytes().to_vec(),
                proof_of_possession: key.prove_possession().to_bytes().to_vec(),
                self_bond: bond.to_string(),
                commission_rate_bps: 500,
                commission_max_rate_bps: 2_000,
                commission_max_change_bps: 100,
            });
            addresses.push(Address::of(&key.public_key()));
        }
        let genesis = pb::Genesis {
            chain_id: CHAIN.into(),
            genesis_time_ms: 0,
            params: Some(pb::GenesisParams {
                // The evidence window: long enough for every run.
                unbonding_period: 100,
                jail_period: 10,
                ..Default::default()
            }),
            accounts,
            validators,
        };
        let ledger = Ledger::from_genesis(&genesis).expect("the simulator's genesis is valid");
        let seed0 = vrf::genesis_seed(&sha3_256(&genesis.encode_to_vec()));
        Self {
            chain,
            seed0,
            ledger,
            consensus_seeds,
            addresses,
            operators,
            users,
        }
    }

    /// The validator set of height 1.
    pub fn set(&self) -> &ValidatorSet {
        self.ledger
            .validator_set(1)
            .expect("genesis sets heights 1 and 2")
    }

    /// The BLS key of validator `i`.
    pub fn key(&self, i: usize) -> SecretKey {
        secret(&self.consensus_seeds[i])
    }
}
