//! `genesis.json`: the chain's starting point in a human-editable form
//! (hex for bytes, decimal strings for u128 amounts), converted to and from
//! `agora_proto::v1::Genesis`. The genesis file hash (which seeds the VRF chain,
//! DESIGN §5) is SHA3-256 of the file's exact bytes.

use std::path::Path;

use agora_proto::v1 as pb;
use agora_validator::crypto::sha3_256;
use agora_validator::{Address, ChainId, Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Why a genesis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid JSON for a genesis.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The cause (with line and column).
        source: serde_json::Error,
    },
    /// A field is invalid.
    #[error("genesis: {0}")]
    Invalid(String),
}

/// Genesis parameters (DESIGN §8 defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisParamsJson {
    /// Tokens per unit of voting power.
    pub power_reduction: String,
    /// Heights between an unbond and its payout.
    pub unbonding_period: u64,
    /// Active validators at most.
    pub max_validators: u32,
    /// Least self-bond.
    pub min_self_bond: String,
    /// Slash for double signing, basis points.
    pub slash_fraction_double_sign_bps: u32,
    /// Unbonding entries per pair at most.
    pub max_unbonding_entries: u32,
    /// Heights a jailed validator waits before Unjail.
    pub jail_period: u64,
    /// Least fee per transaction (decimal u128; "0" for free transactions).
    #[serde(default = "default_min_fee")]
    pub min_fee: String,
    /// Tokens minted per block (decimal u128; may be "0").
    #[serde(default = "default_block_reward")]
    pub block_reward: String,
    /// Proposer's share of a block's rewards, basis points.
    #[serde(default = "default_proposer_bonus")]
    pub proposer_bonus_bps: u32,
    /// Heights between two commission changes.
    #[serde(default = "default_commission_epoch")]
    pub commission_epoch: u64,
    /// Certificates in the downtime window.
    #[serde(default = "default_window")]
    pub signed_blocks_window: u64,
    /// Least signed fraction of the window, basis points.
    #[serde(default = "default_min_signed")]
    pub min_signed_per_window_bps: u32,
    /// Heights a validator jailed for downtime stays jailed.
    #[serde(default = "default_downtime_jail")]
    pub downtime_jail_heights: u64,
    /// Downtime slash, basis points.
    #[serde(default = "default_downtime_slash")]
    pub slash_fraction_downtime_bps: u32,
    /// Redelegation entries per (delegator, source, destination) at most.
    #[serde(default = "default_redelegation_entries")]
    pub max_redelegation_entries: u32,
}

fn default_min_fee() -> String {
    agora_validator::ledger::params::DEFAULT_MIN_FEE.to_string()
}
fn default_block_reward() -> String {
    agora_validator::ledger::params::DEFAULT_BLOCK_REWARD.to_string()
}
fn default_proposer_bonus() -> u32 {
    agora_validator::ledger::params::DEFAULT_PROPOSER_BONUS_BPS
}
fn default_commission_epoch() -> u64 {
    agora_validator::ledger::params::DEFAULT_COMMISSION_EPOCH
}
fn default_window() -> u64 {
    agora_validator::ledger::params::DEFAULT_SIGNED_BLOCKS_WINDOW
}
fn default_min_signed() -> u32 {
    agora_validator::ledger::params::DEFAULT_MIN_SIGNED_PER_WINDOW_BPS
}
fn default_downtime_jail() -> u64 {
    agora_validator::ledger::params::DEFAULT_DOWNTIME_JAIL_HEIGHTS
}
fn default_downtime_slash() -> u32 {
    agora_validator::ledger::params::DEFAULT_SLASH_DOWNTIME_BPS
}
fn default_redelegation_entries() -> u32 {
    agora_validator::ledger::params::DEFAULT_MAX_REDELEGATION_ENTRIES
}

impl Default for GenesisParamsJson {
    fn default() -> Self {
        Self {
            power_reduction: "1000000".into(),
            unbonding_period: 100,
            max_validators: 100,
            min_self_bond: "1000000".into(),
            slash_fraction_double_sign_bps: 500,
            max_unbonding_entries: 7,
            jail_period: 100,
            min_fee: default_min_fee(),
            block_reward: default_block_reward(),
            proposer_bonus_bps: default_proposer_bonus(),
            commission_epoch: default_commission_epoch(),
            signed_blocks_window: default_window(),
            min_signed_per_window_bps: default_min_signed(),
            downtime_jail_heights: default_downtime_jail(),
            slash_fraction_downtime_bps: default_downtime_slash(),
            max_redelegation_entries: default_redelegation_entries(),
        }
    }
}

/// A funded account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccountJson {
    /// 40 hex digits.
    pub address: String,
    /// Decimal u128.
    pub balance: String,
}

/// A genesis validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidatorJson {
    /// Operator account address, 40 hex digits.
    pub operator: String,
    /// Compressed BLS public key, 96 hex digits.
    pub consensus_public_key: String,
    /// Proof of possession, 192 hex digits.
    pub proof_of_possession: String,
    /// Decimal u128 self-bond.
    pub self_bond: String,
    /// Commission rate, basis points.
    #[serde(default)]
    pub commission_rate_bps: u32,
    /// Highest commission rate it may ever set, basis points.
    #[serde(default)]
    pub commission_max_rate_bps: u32,
    /// Largest commission change per commission epoch, basis points.
    #[serde(default)]
    pub commission_max_change_bps: u32,
}

/// The genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisJson {
    /// Name of the chain, 1 to 255 printable ASCII bytes; every signature covers it.
    pub chain_id: String,
    /// Milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Parameters.
    pub params: GenesisParamsJson,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccountJson>,
    /// Initial validators.
    pub validators: Vec<GenesisValidatorJson>,
}

/// Most accounts and validators accepted in a genesis file: what the
/// ledger accepts (a chain may start with a million funded accounts).
pub const MAX_GENESIS_ENTRIES: usize = agora_validator::ledger::MAX_GENESIS_ACCOUNTS;

fn amount(field: &str, s: &str) -> Result<u128, GenesisError> {
    s.parse::<u128>()
        .map_err(|_| GenesisError::Invalid(format!("{field}: {s:?} is not a decimal amount")))
}

fn hex_bytes(field: &str, s: &str, len: usize) -> Result<Vec<u8>, GenesisError> {
    let v = hex::decode(s.strip_prefix("0x").unwrap_or(s))
        .map_err(|_| GenesisError::Invalid(format!("{field}: not hex")))?;
    if v.len() != len {
        return Err(GenesisError::Invalid(format!(
            "{field}: expected {len} bytes, got {}",
            v.len()
        )));
    }
    Ok(v)
}

impl GenesisJson {
    /// Checks formats, amounts, and every validator's proof of possession.
    pub fn validate(&self) -> Result<(), GenesisError> {
        ChainId::new(self.chain_id.clone())
            .map_err(|e| GenesisError::Invalid(format!("chain_id: {e}")))?;
        if self.accounts.len() > MAX_GENESIS_ENTRIES || self.validators.len() > MAX_GENESIS_ENTRIES
        {
            return Err(GenesisError::Invalid(
                "too many accounts or validators".into(),
            ));
        }
        if self.validators.is_empty() {
            return Err(GenesisError::Invalid("no validators".into()));
        }
        let p = &self.params;
        if amount("params.power_reduction", &p.power_reduction)? == 0 {
            return Err(GenesisError::Invalid(
                "params.power_reduction must be positive".into(),
            ));
        }
        amount("params.min_self_bond", &p.min_self_bond)?;
        if p.slash_fraction_double_sign_bps > 10_000 {
            return Err(GenesisError::Invalid(
                "params.slash_fraction_double_sign_bps > 10000".into(),
            ));
        }
        for (i, a) in self.accounts.iter().enumerate() {
            hex_bytes(&format!("accounts[{i}].address"), &a.address, 20)?;
            amount(&format!("accounts[{i}].balance"), &a.balance)?;
        }
        for (i, v) in self.validators.iter().enumerate() {
            hex_bytes(&format!("validators[{i}].operator"), &v.operator, 20)?;
            amount(&format!("validators[{i}].self_bond"), &v.self_bond)?;
            let pk = hex_bytes(
                &format!("validators[{i}].consensus_public_key"),
                &v.consensus_public_key,
                48,
            )?;
            let pop = hex_bytes(
                &format!("validators[{i}].proof_of_possession"),
                &v.proof_of_possession,
                96,
            )?;
            let pk = PublicKey::from_bytes(&pk).map_err(|e| {
                GenesisError::Invalid(format!("validators[{i}].consensus_public_key: {e}"))
            })?;
            let pop = Signature::from_bytes(&pop).map_err(|e| {
                GenesisError::Invalid(format!("validators[{i}].proof_of_possession: {e}"))
            })?;
            pk.verify_possession(&pop).map_err(|_| {
                GenesisError::Invalid(format!(
                    "validators[{i}]: proof of possession does not verify"
                ))
            })?;
        }
        Ok(())
    }

    /// The protobuf form (validates first).
    pub fn to_proto(&self) -> Result<pb::Genesis, GenesisError> {
        self.validate()?;
        let p = &self.params;
        Ok(pb::Genesis {
            chain_id: self.chain_id.clone(),
            genesis_time_ms: self.genesis_time_ms,
            params: Some(pb::GenesisParams {
                power_reduction: p.power_reduction.clone(),
                unbonding_period: p.unbonding_period,
                max_validators: p.max_validators,
                min_self_bond: p.min_self_bond.clone(),
                slash_fraction_double_sign_bps: p.slash_fraction_double_sign_bps,
                max_unbonding_entries: p.max_unbonding_entries,
                jail_period: p.jail_period,
                min_fee: p.min_fee.clone(),
                block_reward: p.block_reward.clone(),
                proposer_bonus_bps: p.proposer_bonus_bps,
                commission_epoch: p.commission_epoch,
                signed_blocks_window: p.signed_blocks_window,
                min_signed_per_window_bps: p.min_signed_per_window_bps,
                downtime_jail_heights: p.downtime_jail_heights,
                slash_fraction_downtime_bps: p.slash_fraction_downtime_bps,
                max_redelegation_entries: p.max_redelegation_entries,
            }),
            accounts: self
                .accounts
                .iter()
                .map(|a| {
                    Ok(pb::GenesisAccount {
                        address: hex_bytes("address", &a.address, 20)?,
                        balance: a.balance.clone(),
                    })
                })
                .collect::<Result<_, GenesisError>>()?,
            validators: self
                .validators
                .iter()
                .map(|v| {
                    Ok(pb::GenesisValidator {
                        operator: hex_bytes("operator", &v.operator, 20)?,
                        consensus_public_key: hex_bytes("key", &v.consensus_public_key, 48)?,
                        proof_of_possession: hex_bytes("pop", &v.proof_of_possession, 96)?,
                        self_bond: v.self_bond.clone(),
                        commission_rate_bps: v.commission_rate_bps,
                        commission_max_rate_bps: v.commission_max_rate_bps,
                        commission_max_change_bps: v.commission_max_change_bps,
                    })
                })
                .collect::<Result<_, GenesisError>>()?,
        })
    }

    /// The JSON form of a protobuf genesis.
    pub fn from_proto(g: &pb::Genesis) -> Self {
        let p = g.params.clone().unwrap_or_default();
        Self {
            chain_id: g.chain_id.clone(),
            genesis_time_ms: g.genesis_time_ms,
            params: GenesisParamsJson {
                power_reduction: p.power_reduction,
                unbonding_period: p.unbonding_period,
                max_validators: p.max_validators,
                min_self_bond: p.min_self_bond,
                slash_fraction_double_sign_bps: p.slash_fraction_double_sign_bps,
                max_unbonding_entries: p.max_unbonding_entries,
                jail_period: p.jail_period,
                min_fee: p.min_fee,
                block_reward: p.block_reward,
                proposer_bonus_bps: p.proposer_bonus_bps,
                commission_epoch: p.commission_epoch,
                signed_blocks_window: p.signed_blocks_window,
                min_signed_per_window_bps: p.min_signed_per_window_bps,
                downtime_jail_heights: p.downtime_jail_heights,
                slash_fraction_downtime_bps: p.slash_fraction_downtime_bps,
                max_redelegation_entries: p.max_redelegation_entries,
            },
            accounts: g
                .accounts
                .iter()
                .map(|a| GenesisAccountJson {
                    address: hex::encode(&a.address),
                    balance: a.balance.clone(),
                })
                .collect(),
            validators: g
                .validators
                .iter()
                .map(|v| GenesisValidatorJson {
                    operator: hex::encode(&v.operator),
                    consensus_public_key: hex::encode(&v.consensus_public_key),
                    proof_of_possession: hex::encode(&v.proof_of_possession),
                    self_bond: v.self_bond.clone(),
                    commission_rate_bps: v.commission_rate_bps,
                    commission_max_rate_bps: v.commission_max_rate_bps,
                    commission_max_change_bps: v.commission_max_change_bps,
                })
                .collect(),
        }
    }

    /// Pretty JSON text, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A loaded genesis: the protobuf form and the hash of the file's bytes.
#[derive(Debug, Clone)]
pub struct LoadedGenesis {
    /// The genesis.
    pub genesis: pb::Genesis,
    /// SHA3-256 of the file bytes (seeds the VRF chain).
    pub file_hash: Hash,
}

/// Largest genesis file read.
/// (A million accounts take about 75 MB of JSON.)
pub const MAX_GENESIS_FILE: u64 = 128 * 1024 * 1024;

/// Reads, parses and validates a genesis file.
pub fn load(path: &Path) -> Result<LoadedGenesis, GenesisError> {
    let p = path.display().to_string();
    let io = |source| GenesisError::Io {
        path: p.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_GENESIS_FILE {
        return Err(GenesisError::Invalid(format!(
            "{p}: larger than {MAX_GENESIS_FILE} bytes"
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let json: GenesisJson =
        serde_json::from_slice(&bytes).map_err(|source| GenesisError::Json {
            path: p.clone(),
            source,
        })?;
    Ok(LoadedGenesis {
        genesis: json.to_proto()?,
        file_hash: sha3_256(&bytes),
    })
}

/// A genesis with one validator: consensus key `key`, operated (and
/// self-bonded) by the Ed25519 account `operator`, which is funded.
pub fn single_validator(
    chain_id: &ChainId,
    key: &agora_validator::SecretKey,
    operator: Address,
    genesis_time_ms: u64,
) -> GenesisJson {
    let pk = key.public_key();
    let operator = operator.to_string();
    GenesisJson {
        chain_id: chain_id.as_str().to_string(),
        genesis_time_ms,
        params: GenesisParamsJson::default(),
        accounts: vec![GenesisAccountJson {
            address: operator.clone(),
            balance: "1000000000000000".into(),
        }],
        validators: vec![GenesisValidatorJson {
            operator,
            consensus_public_key: hex::encode(pk.to_bytes()),
            proof_of_possession: hex::encode(key.prove_possession().to_bytes()),
            self_bond: "100000000".into(),
            commission_rate_bps: 1_000,
            commission_max_rate_bps: 2_000,
            commission_max_change_bps: 100,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::{AccountSecretKey, SecretKey};

    fn sample() -> GenesisJson {
        let k = SecretKey::from_seed(&[3; 32]).unwrap();
        let op = AccountSecretKey::from_seed(&[3; 32]).public_key();
        single_validator(&ChainId::new("c").unwrap(), &k, Address::of_account(&op), 5)
    }

    #[test]
    fn json_proto_round_trip_and_file_hash() {
        let g = sample();
        let proto = g.to_proto().unwrap();
        assert_eq!(GenesisJson::from_proto(&proto), g);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("genesis.json");
        std::fs::write(&p, g.to_json()).unwrap();
        let loaded = load(&p).unwrap();
        assert_eq!(loaded.genesis, proto);
        assert_eq!(loaded.file_hash, sha3_256(g.to_json().as_bytes()));
    }

    #[test]
    fn bad_pop_amount_and_key_are_rejected() {
        let mut g = sample();
        let other = SecretKey::from_seed(&[4; 32]).unwrap();
        g.validators[0].proof_of_possession = hex::encode(other.prove_possession().to_bytes());
        assert!(
            g.validate()
                .unwrap_err()
                .to_string()
                .contains("proof of possession")
        );
        let mut g = sample();
        g.accounts[0].balance = "-1".into();
        assert!(
            g.validate()
                .unwrap_err()
                .to_string()
                .contains("accounts[0].balance")
        );
        let mut g = sample();
        g.validators[0].consensus_public_key = "00".repeat(48);
        assert!(g.validate().is_err());
    }
}
