//! `bttd validator …`: staking from the command line (docs/staking.md), against any node's
//! JSON-RPC (`--rpc-url`). Transactions to StakeManager at 0x…1000 are signed here, with a
//! node home's account key, a keystore or a devnet account, as `bttd channel` signs.
//!
//! `register` also needs the home's BLS key: it signs the proof of possession and the
//! registration over (chain id, owner, signer) that StakeManager checks, and then writes the
//! `[validator]` section of HOME/config.toml if it has none, so `bttd node --home DIR` signs
//! from the epoch whose set names the key. Each command prints one JSON object on stdout.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use bttd_contracts::{STAKE_MANAGER_ADDRESS, StakeManager};
use bttd_keys::KeystoreDir;
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use serde_json::{Value, json};

use super::channel::client::{Node, calldata};
use super::channel::{KeyArgs, parse_amount, print, receipt_json};

#[derive(Debug, Args)]
pub struct ValidatorArgs {
    #[command(flatten)]
    node: super::NodeUrl,
    /// tracing filter for the logs on stderr (also RUST_LOG).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: ValidatorCommand,
}

#[derive(Debug, Subcommand)]
enum ValidatorCommand {
    /// Register the home's keys as a validator with a self-stake (owner and signer: the
    /// home's account), and write HOME/config.toml's `[validator]` section if absent.
    Register {
        /// The node home whose keys register (`bttd keys new --home DIR`).
        #[arg(long)]
        home: PathBuf,
        /// File whose first line is the password of the home's keystores.
        #[arg(long)]
        password_file: PathBuf,
        /// Self-stake (wei, or e.g. `10btt`): at least the chain's minSelfStake.
        #[arg(long, value_parser = parse_amount)]
        stake: U256,
        /// Commission on the delegators' rewards, in basis points (at most 10000).
        #[arg(long, default_value_t = 0)]
        commission_bps: u16,
    },
    /// Delegate to a validator (by owner).
    Delegate {
        #[arg(long)]
        validator: Address,
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Start unbonding part of a delegation.
    Undelegate {
        #[arg(long)]
        validator: Address,
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Withdraw every unbonding entry that has completed.
    Withdraw {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Claim a delegation's rewards (the owner also gets the validator's commission).
    Claim {
        #[arg(long)]
        validator: Address,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Change the commission of the validator the key owns.
    SetCommission {
        #[arg(long)]
        bps: u16,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Rotate the signer of the validator the key owns (from the next epoch's set).
    SetSigner {
        #[arg(long)]
        signer: Address,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Put the validator the key owns back among the candidates after a downtime jail
    /// (`unjail()`; allowed from `jailedUntilEpoch`, never for a tombstoned validator). It
    /// rejoins the set at the end of the epoch if its stake qualifies.
    Unjail {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// A validator's stake, commission, status (jailed, tombstoned, ...), `jailedUntilEpoch`,
    /// keys and downtime count (`uptime`: window and blocks missed in it).
    Info {
        /// The validator's owner.
        owner: Address,
        /// Print JSON (default: one line per field).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ValidatorArgs) -> eyre::Result<()> {
    super::init_tracing(&args.log);
    super::runtime()?.block_on(dispatch(args))
}

async fn dispatch(args: ValidatorArgs) -> eyre::Result<()> {
    let node = Node::connect(&args.node.rpc_url)?;
    let what = command_name(&args.command);
    let (key, value, input) = match args.command {
        ValidatorCommand::Register {
            home,
            password_file,
            stake,
            commission_bps,
        } => return register(&node, &home, &password_file, stake, commission_bps).await,
        ValidatorCommand::Info { owner, json } => return info(&node, owner, json).await,
        ValidatorCommand::Delegate {
            validator,
            amount,
            key,
        } => (
            key,
            amount,
            calldata(StakeManager::delegateCall { validator }),
        ),
        ValidatorCommand::Undelegate {
            validator,
            amount,
            key,
        } => (
            key,
            U256::ZERO,
            calldata(StakeManager::undelegateCall { validator, amount }),
        ),
        ValidatorCommand::Withdraw { key } => (
            key,
            U256::ZERO,
            calldata(StakeManager::withdrawUnbondedCall {}),
        ),
        ValidatorCommand::Claim { validator, key } => (
            key,
            U256::ZERO,
            calldata(StakeManager::claimRewardsCall { validator }),
        ),
        ValidatorCommand::SetCommission { bps, key } => (
            key,
            U256::ZERO,
            calldata(StakeManager::setCommissionCall { commissionBps: bps }),
        ),
        ValidatorCommand::SetSigner { signer, key } => (
            key,
            U256::ZERO,
            calldata(StakeManager::setSignerCall { signer }),
        ),
        ValidatorCommand::Unjail { key } => {
            (key, U256::ZERO, calldata(StakeManager::unjailCall {}))
        }
    };
    let signer = key.signer()?;
    let receipt = node
        .send(&signer, STAKE_MANAGER_ADDRESS, value, input)
        .await
        .wrap_err_with(|| format!("{what} from {} refused", signer.address()))?;
    print(&receipt_json(&receipt));
    Ok(())
}

/// The StakeManager function a command calls (for its error messages).
fn command_name(command: &ValidatorCommand) -> &'static str {
    match command {
        ValidatorCommand::Register { .. } => "registerValidator",
        ValidatorCommand::Delegate { .. } => "delegate",
        ValidatorCommand::Undelegate { .. } => "undelegate",
        ValidatorCommand::Withdraw { .. } => "withdrawUnbonded",
        ValidatorCommand::Claim { .. } => "claimRewards",
        ValidatorCommand::SetCommission { .. } => "setCommission",
        ValidatorCommand::SetSigner { .. } => "setSigner",
        ValidatorCommand::Unjail { .. } => "unjail",
        ValidatorCommand::Info { .. } => "validatorInfo",
    }
}

/// Registers the home's keys: owner and signer are its account, the BLS key its own.
async fn register(
    node: &Node,
    home: &Path,
    password_file: &Path,
    stake: U256,
    commission_bps: u16,
) -> eyre::Result<()> {
    let password = bttd_keys::read_password_file(password_file)?;
    let keys = KeystoreDir::new(home.join(bttd_node::testnet::KEYSTORE_DIR))
        .unlock(&password)
        .wrap_err_with(|| format!("unlocking the keys of {}", home.display()))?;
    let account = keys.address();
    let chain_id = node.chain_id().await?;
    let registration = keys.bls.registration(chain_id, account, account);
    let input = calldata(StakeManager::registerValidatorCall {
        signer: account,
        blsPublicKey: registration.public_key.into(),
        proofOfPossession: registration.proof_of_possession.into(),
        registrationSignature: registration.registration_signature.into(),
        commissionBps: commission_bps,
    });
    let receipt = node
        .send(&keys.account, STAKE_MANAGER_ADDRESS, stake, input)
        .await?;
    let wrote_config = write_validator_section(home, password_file)?;
    let mut out = receipt_json(&receipt);
    out["owner"] = json!(account);
    out["signer"] = json!(account);
    out["blsPublicKey"] = json!(keys.bls_public_key());
    out["configWritten"] = json!(wrote_config);
    print(&out);
    Ok(())
}

/// Appends a `[validator]` section naming the home's keystores to HOME/config.toml when it has
/// none (its comments and other sections stay as they are). Returns whether it wrote one.
fn write_validator_section(home: &Path, password_file: &Path) -> eyre::Result<bool> {
    let path = home.join(bttd_node::testnet::CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).wrap_err_with(|| format!("reading {}", path.display())),
    };
    let config: toml::Table =
        toml::from_str(&text).wrap_err_with(|| format!("{}", path.display()))?;
    if config.contains_key("validator") {
        return Ok(false);
    }
    let password_file = std::path::absolute(password_file)?;
    let section = format!(
        "\n# Written by `bttd validator register`: this node signs from the epoch whose set\n\
         # names its key.\n[validator]\nbls-keystore = \"{dir}/{bls}\"\naccount-keystore = \"{dir}/{account}\"\npassword-file = {password}\n",
        dir = bttd_node::testnet::KEYSTORE_DIR,
        bls = bttd_keys::BLS_FILE,
        account = bttd_keys::ACCOUNT_FILE,
        password = toml::Value::String(password_file.display().to_string()),
    );
    std::fs::write(&path, text + &section)
        .wrap_err_with(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// `validatorInfo`, `validatorKeys` and `uptime` of `owner`.
async fn info(node: &Node, owner: Address, as_json: bool) -> eyre::Result<()> {
    let call = |input: Bytes| node.call(STAKE_MANAGER_ADDRESS, input, None);
    let (info, keys, uptime, window, head) = tokio::try_join!(
        call(calldata(StakeManager::validatorInfoCall { owner })),
        call(calldata(StakeManager::validatorKeysCall { owner })),
        call(calldata(StakeManager::uptimeCall { owner })),
        call(calldata(StakeManager::downtimeWindowCall {})),
        node.raw("eth_blockNumber", Vec::new()),
    )?;
    let info = StakeManager::validatorInfoCall::abi_decode_returns(&info)
        .map_err(|e| eyre!("validatorInfo: {e}"))?;
    let keys = StakeManager::validatorKeysCall::abi_decode_returns(&keys)
        .map_err(|e| eyre!("validatorKeys: {e}"))?;
    let uptime =
        StakeManager::uptimeCall::abi_decode_returns(&uptime).map_err(|e| eyre!("uptime: {e}"))?;
    let window = StakeManager::downtimeWindowCall::abi_decode_returns(&window)
        .map_err(|e| eyre!("downtimeWindow: {e}"))?;
    let head: alloy_primitives::U64 = serde_json::from_value(head)?;
    if info.status == 0 && keys.signer == Address::ZERO {
        bail!("{owner} is not a registered validator");
    }
    let status = match info.status {
        1 => "candidate",
        2 => "jailed",
        3 => "tombstoned",
        4 => "active",
        _ => "none",
    };
    let missed = missed_in_head_window(head.to(), window, uptime.window, uptime.missed);
    let out: Value = json!({
        "owner": owner,
        "signer": keys.signer,
        "blsPublicKey": keys.blsPublicKey,
        "selfStake": info.selfStake.to_string(),
        "totalStake": info.totalStake.to_string(),
        "commissionBps": info.commissionBps,
        "status": status,
        "statusCode": info.status,
        "jailedUntilEpoch": info.jailedUntilEpoch,
        "commissionOwed": keys.commissionOwed.to_string(),
        "uptime": { "window": uptime.window, "missed": uptime.missed },
        "missedBlocks": missed,
        "blockNumber": head.to::<u64>(),
    });
    if as_json {
        print(&out);
    } else if let Value::Object(fields) = out {
        for (k, v) in fields {
            println!(
                "{k}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            );
        }
    }
    Ok(())
}

/// Blocks missed in the downtime window of block `head` (windows of `window` blocks from
/// block 1): `uptime`'s count when it is of that window, else 0 (docs/staking.md).
fn missed_in_head_window(head: u64, window: U256, uptime_window: u64, missed: u64) -> u64 {
    let window = u64::try_from(window).unwrap_or(u64::MAX).max(1);
    if head > 0 && uptime_window == (head - 1) / window {
        missed
    } else {
        0
    }
}
