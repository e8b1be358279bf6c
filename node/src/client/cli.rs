//! The client subcommands of `agora` (`tx`, `query`, `audit`): argument
//! parsing and printing around [`super::tx`], [`super::query`] and
//! [`super::audit`].

use super::prove;
use super::query::{self, QueryKind};
use super::tx::{self, TxAction};
use crate::home::Home;
use crate::outln;
use agora_validator::ledger::Ledger;
use agora_validator::{AccountSecretKey, Address, SecretKey};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output format.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Indented JSON or sentences for people.
    Text,
    /// One JSON document.
    Json,
}

/// Options shared by `agora tx` subcommands.
#[derive(Args, Debug)]
pub struct TxArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: TxCmd,
    /// gRPC endpoint of a node.
    #[arg(long, global = true, default_value = "127.0.0.1:9090")]
    pub node: String,
    /// Home directory holding the signing key.
    #[arg(long, global = true)]
    pub home: Option<PathBuf>,
    /// Ed25519 account key name in HOME/keys that signs (`operator` is the
    /// validator's operator account made by `agora init`).
    #[arg(long, global = true, default_value = "operator")]
    pub from: String,
    /// Return once admitted instead of waiting for the commit.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Fee in base units (at least the chain's min_fee; paid even if the transaction fails).
    #[arg(long, global = true, default_value_t = tx::DEFAULT_FEE)]
    pub fee: u128,
    /// Nonce to sign with (default: the account's next at the node, past
    /// its transactions pending there). When sending through several
    /// nodes: a node's refusal of a taken nonce names the next acceptable one.
    #[arg(long, global = true)]
    pub nonce: Option<u64>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    pub output: Output,
}

/// `agora tx` subcommands.
#[derive(Subcommand, Debug)]
pub enum TxCmd {
    /// Delegate AMOUNT tokens to VALIDATOR.
    Bond {
        /// Validator address.
        validator: String,
        /// Tokens in base units.
        amount: u128,
    },
    /// Unbond SHARES from VALIDATOR (paid out after the unbonding period).
    Unbond {
        /// Validator address.
        validator: String,
        /// Shares to unbond.
        shares: u128,
    },
    /// Send AMOUNT tokens to TO.
    Transfer {
        /// Recipient address.
        to: String,
        /// Tokens in base units.
        amount: u128,
    },
    /// Register a validator whose consensus key is --consensus-key, self-bonding SELF_BOND.
    CreateValidator {
        /// Self-bond in base units.
        self_bond: u128,
        /// Key name of the consensus key.
        #[arg(long, default_value = "validator")]
        consensus_key: String,
        /// Commission on delegators' rewards, basis points (1000 = 10%).
        #[arg(long, default_value_t = 1_000)]
        commission_rate_bps: u32,
        /// Highest commission rate ever allowed, basis points.
        #[arg(long, default_value_t = 2_000)]
        commission_max_rate_bps: u32,
        /// Largest commission change per commission epoch, basis points.
        #[arg(long, default_value_t = 100)]
        commission_max_change_bps: u32,
    },
    /// Release VALIDATOR from jail.
    Unjail {
        /// Validator address (default: the validator whose consensus key
        /// is in HOME/keys, as in a home made by `agora init`).
        validator: Option<String>,
    },
    /// Move SHARES from validator SRC to validator DST at once.
    Redelegate {
        /// Source validator address.
        src: String,
        /// Destination validator address.
        dst: String,
        /// Shares of SRC to move.
        shares: u128,
    },
    /// Withdraw the rewards accrued by the delegation to VALIDATOR.
    WithdrawRewards {
        /// Validator address.
        validator: String,
    },
    /// Set the commission rate of VALIDATOR (its operator only).
    EditValidator {
        /// Validator address (default: the validator whose consensus key
        /// is in HOME/keys).
        validator: Option<String>,
        /// New commission rate, basis points.
        #[arg(long)]
        commission_rate_bps: u32,
    },
}

/// Options of `agora query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// What to read.
    #[command(subcommand)]
    pub cmd: QueryCmd,
    /// gRPC endpoint of a node.
    #[arg(long, global = true, default_value = "127.0.0.1:9090")]
    pub node: String,
    /// Longest wait for each answer from the node, in seconds; a node that
    /// does not answer in time is reported, not waited on.
    #[arg(long, global = true, default_value_t = super::REQUEST_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub timeout: u64,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    pub output: Output,
    /// Check the answer instead of believing the node (account, validator,
    /// delegation, delegations, unbonding, slashes, redelegations,
    /// rewards, supply): each value comes with a Merkle proof against the
    /// app hash of height H, read from the header of H + 1, which the light
    /// client verifies from --genesis or --trust. Shows the proven values
    /// (rewards: computed from the proven validator and delegation leaves;
    /// supply: the counters and the tokens in existence). A list's
    /// items are each proven, and so is the leaf that counts them (the
    /// delegator's account; for slashes the chain-wide leaf): a list whose
    /// pages were proven at one height is shown complete (`list`), and a
    /// node that leaves an item out is refused. For block, tx and
    /// validators: checked against the verified header of their height;
    /// for cert: against that header and the height's verified set.
    #[arg(long, global = true)]
    pub prove: bool,
    /// Items asked per page when listing (delegations, unbonding,
    /// redelegations, slashes); every page is followed. The node caps it at
    /// 200, and at 32 with --prove.
    #[arg(long, global = true, default_value_t = super::pages::PAGE_LIMIT, value_name = "ITEMS")]
    pub page_size: u32,
    /// With --prove: the genesis file, whose validator set is trusted.
    #[arg(long, global = true, value_name = "PATH")]
    pub genesis: Option<PathBuf>,
    /// With --prove: trust this block HEIGHT:HASH instead of genesis (it
    /// must be at or below the proven height + 1; recent, within the
    /// unbonding period). Trust assumption as `agora audit --trust --skip`.
    #[arg(long, global = true, value_name = "HEIGHT:HASH", value_parser = super::light_audit::parse_checkpoint)]
    pub trust: Option<(u64, agora_validator::crypto::Hash)>,
}

/// `agora query` subcommands.
#[derive(Subcommand, Debug)]
pub enum QueryCmd {
    /// Chain id, latest height and block hash.
    Status,
    /// A block.
    Block {
        /// Height of the block to show (1 or more).
        height: u64,
    },
    /// A commit certificate and its header.
    Cert {
        /// Height whose certificate to show (1 or more).
        height: u64,
    },
    /// The validator set of a height (0: the next height).
    Validators {
        /// Height whose set to show; 0, the default, is the next height to decide.
        #[arg(default_value_t = 0)]
        height: u64,
    },
    /// One validator's staking record.
    Validator {
        /// The validator's address (40 hex digits).
        address: String,
    },
    /// One delegation.
    Delegation {
        /// Delegator address.
        delegator: String,
        /// Validator address.
        validator: String,
    },
    /// A delegator's delegations.
    Delegations {
        /// Delegator address.
        delegator: String,
    },
    /// A delegator's unbonding entries.
    Unbonding {
        /// Delegator address.
        delegator: String,
    },
    /// Slashing events (of one validator, or all).
    Slashes {
        /// Validator address.
        validator: Option<String>,
    },
    /// An account's balance, committed nonce and pending nonce (the next
    /// at this node, past its pending transactions).
    Account {
        /// The account's address (40 hex digits).
        address: String,
    },
    /// A transaction's status.
    Tx {
        /// Transaction hash (hex).
        hash: String,
    },
    /// Rewards a delegation has accrued and not yet withdrawn.
    Rewards {
        /// Delegator address.
        delegator: String,
        /// Validator address.
        validator: String,
    },
    /// A delegator's pending redelegations.
    Redelegations {
        /// Delegator address.
        delegator: String,
    },
    /// Where every token is: genesis, minted, balances, bonded, unbonding, unclaimed, burnt.
    Supply,
}

fn addr(s: &str) -> Result<Address> {
    // The parser's own reason says the same again; one sentence is enough.
    Address::from_hex(s).map_err(|_| anyhow!("{s:?} is not an address (40 hex digits)"))
}

/// The validator named, or else the one whose consensus key is in the
/// home: an operator unjails or edits its own validator from its own home
/// without looking its address up.
fn validator_or_own(named: Option<&str>, home: &Option<PathBuf>) -> Result<Address> {
    if let Some(v) = named {
        return addr(v);
    }
    let key = load_key(home, "validator")
        .context("no VALIDATOR given, and none found in the home: name the validator's address")?;
    Ok(Address::of(&key.public_key()))
}

fn print(output: Output, v: &serde_json::Value) {
    match output {
        Output::Json => outln!("{v}"),
        Output::Text => outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

fn load_account_key(home: &Option<PathBuf>, name: &str) -> Result<AccountSecretKey> {
    let Some(home) = home else {
        bail!("--home is required to find the key {name:?}");
    };
    let path = Home::new(home).account_key(name);
    crate::keys::load_account(&path).with_context(|| format!("loading account key {name:?}"))
}

fn load_key(home: &Option<PathBuf>, name: &str) -> Result<SecretKey> {
    let Some(home) = home else {
        bail!("--home is required to find the key {name:?}");
    };
    let h = Home::new(home);
    let path = if name == "validator" {
        h.validator_key()
    } else {
        h.account_key(name)
    };
    crate::keys::load(&path).with_context(|| format!("loading key {name:?}"))
}

async fn channel(node: &str) -> Result<tonic::transport::Channel> {
    channel_within(node, super::REQUEST_TIMEOUT.as_secs()).await
}

/// A channel whose every request waits at most `secs` for its answer.
pub(super) async fn channel_within(node: &str, secs: u64) -> Result<tonic::transport::Channel> {
    super::connect_with_timeout(node, std::time::Duration::from_secs(secs.max(1)))
        .await
        .with_context(|| format!("connecting to {node}"))
}

/// `agora tx ...`: exits non-zero when the transaction was rejected or failed.
pub async fn run_tx(a: TxArgs) -> Result<ExitCode> {
    let sender = load_account_key(&a.home, &a.from)?;
    let action = match a.cmd {
        TxCmd::Bond { validator, amount } => TxAction::Bond {
            validator: addr(&validator)?,
            amount,
        },
        TxCmd::Unbond { validator, shares } => TxAction::Unbond {
            validator: addr(&validator)?,
            shares,
        },
        TxCmd::Transfer { to, amount } => TxAction::Transfer {
            to: addr(&to)?,
            amount,
        },
        TxCmd::CreateValidator {
            self_bond,
            consensus_key,
            commission_rate_bps,
            commission_max_rate_bps,
            commission_max_change_bps,
        } => TxAction::CreateValidator {
            consensus_key: Box::new(load_key(&a.home, &consensus_key)?),
            self_bond,
            commission: [
                commission_rate_bps,
                commission_max_rate_bps,
                commission_max_change_bps,
            ],
        },
        TxCmd::Unjail { validator } => TxAction::Unjail {
            validator: validator_or_own(validator.as_deref(), &a.home)?,
        },
        TxCmd::Redelegate { src, dst, shares } => TxAction::Redelegate {
            src: addr(&src)?,
            dst: addr(&dst)?,
            shares,
        },
        TxCmd::WithdrawRewards { validator } => TxAction::WithdrawRewards {
            validator: addr(&validator)?,
        },
        TxCmd::EditValidator {
            validator,
            commission_rate_bps,
        } => TxAction::EditValidator {
            validator: validator_or_own(validator.as_deref(), &a.home)?,
            rate_bps: commission_rate_bps,
        },
    };
    let node = channel(&a.node).await?;
    let how = tx::Submission {
        fee: a.fee,
        nonce: a.nonce,
        wait: !a.no_wait,
    };
    let r = tx::submit_as(node, &sender, &action, how).await?;
    print(a.output, &tx::outcome_json(&r));
    let bad = matches!(tx::status_name(r.status), "rejected" | "failed");
    Ok(if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `agora query ...`.
pub async fn run_query(a: QueryArgs) -> Result<ExitCode> {
    let q = match &a.cmd {
        QueryCmd::Status => QueryKind::Status,
        QueryCmd::Block { height } => QueryKind::Block(*height),
        QueryCmd::Cert { height } => QueryKind::Cert(*height),
        QueryCmd::Validators { height } => QueryKind::Validators(*height),
        QueryCmd::Validator { address } => QueryKind::Validator(addr(address)?),
        QueryCmd::Delegation {
            delegator,
            validator,
        } => QueryKind::Delegation {
            delegator: addr(delegator)?,
            validator: addr(validator)?,
        },
        QueryCmd::Delegations { delegator } => QueryKind::Delegations(addr(delegator)?),
        QueryCmd::Unbonding { delegator } => QueryKind::Unbonding(addr(delegator)?),
        QueryCmd::Slashes { validator } => {
            QueryKind::Slashes(validator.as_deref().map(addr).transpose()?)
        }
        QueryCmd::Account { address } => QueryKind::Account(addr(address)?),
        QueryCmd::Rewards {
            delegator,
            validator,
        } => QueryKind::Rewards {
            delegator: addr(delegator)?,
            validator: addr(validator)?,
        },
        QueryCmd::Redelegations { delegator } => QueryKind::Redelegations(addr(delegator)?),
        QueryCmd::Supply => QueryKind::Supply,
        QueryCmd::Tx { hash } => {
            let b = hex::decode(hash).context("the transaction hash must be hex")?;
            QueryKind::Tx(
                b.try_into()
                    .map_err(|_| anyhow::anyhow!("the transaction hash must be 32 bytes"))?,
            )
        }
    };
    if a.prove {
        let trust = prove_trust(&a)?;
        let channel = channel_within(&a.node, a.timeout).await?;
        let v = prove::run(channel, &q, trust, a.page_size).await?;
        print(a.output, &v);
        return Ok(ExitCode::SUCCESS);
    }
    let v = query::run(channel_within(&a.node, a.timeout).await?, &q, a.page_size)
        .await
        .map_err(|s| anyhow::anyhow!("{}", super::status_text(&s)))?;
    print(a.output, &v);
    Ok(ExitCode::SUCCESS)
}

/// What `--prove` trusts: a checkpoint, else the genesis file's set.
fn prove_trust(a: &QueryArgs) -> Result<prove::Trust> {
    if let Some((h, hash)) = a.trust {
        return Ok(prove::Trust::Checkpoint(h, hash));
    }
    let path = a
        .genesis
        .as_ref()
        .context("--prove needs --genesis PATH (or --trust HEIGHT:HASH) to know whom to trust")?;
    let g = crate::genesis::load(path).with_context(|| format!("loading {}", path.display()))?;
    let ledger = Ledger::from_genesis(&g.genesis).context("the genesis file is not valid")?;
    let set = ledger
        .validator_set(1)
        .cloned()
        .context("the genesis file has no validator set")?;
    Ok(prove::Trust::Genesis(ledger.chain_id().clone(), set))
}
