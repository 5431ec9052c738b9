//! `bttd channel …`: bandwidth payment channels from the command line, against any node's
//! JSON-RPC (`--rpc-url`). Transactions are signed here, with a Web3 Secret Storage keystore
//! or a devnet account, and sent with eth_sendRawTransaction; vouchers are signed off-chain.
//!
//! Output: each command prints one JSON object on stdout (a voucher is one JSON line, the
//! format `watch` and `settle-batch` read); logs go to stderr. Amounts are wei, or BTT with a
//! `btt` suffix (`2.5btt`).

pub(crate) mod client;
mod store;
mod tower;
mod watch;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_eth::TransactionReceipt;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;
use bttd_contracts::BANDWIDTH_CHANNELS_ADDRESS;
use bttd_contracts::channels::{
    ChannelsDomain, CloseSignature, IBandwidthChannels, SignedVoucher, StrictSignature,
};
use clap::{ArgGroup, Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use serde_json::{Value, json};

use client::{Node, calldata};

#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    node: super::NodeUrl,
    /// tracing filter for the logs on stderr (also RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: ChannelCommand,
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Open a channel to a payee with a deposit (prints the channel id).
    Open {
        #[arg(long)]
        payee: Address,
        /// Deposit (wei, or e.g. `10btt`).
        #[arg(long, value_parser = parse_amount)]
        deposit: U256,
        /// Seconds the payee has to settle after a close request (within the genesis bounds).
        #[arg(long)]
        settle_window: u64,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Add to a channel's deposit (refused once a close was requested).
    Topup {
        #[arg(long)]
        channel: B256,
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Sign a voucher off-chain (payer) and print it as a JSON line; with --close, sign the
    /// payee's consent to a cooperative close instead.
    Voucher {
        #[arg(long)]
        channel: B256,
        /// Cumulative amount: the total the payee may take, not an increment.
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        /// Sign `Close(channelId, cumulativeAmount)` (the payee's part of a cooperative close).
        #[arg(long)]
        close: bool,
        /// Chain id to sign for; asked from --rpc-url when absent (give it to sign offline).
        #[arg(long)]
        chain_id: Option<u64>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Settle one voucher (anyone may submit; the payee is paid).
    #[command(group(ArgGroup::new("what").required(true).args(["voucher", "channel"])))]
    Settle {
        /// The voucher's JSON line (as `voucher` prints it).
        #[arg(long)]
        voucher: Option<String>,
        #[arg(long, requires_all = ["amount", "signature"])]
        channel: Option<B256>,
        #[arg(long, value_parser = parse_amount)]
        amount: Option<U256>,
        #[arg(long)]
        signature: Option<Bytes>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Settle many vouchers in one transaction (JSON lines from a file, `-` for stdin).
    SettleBatch {
        #[arg(long)]
        vouchers: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Payer: request a close (the payee can settle until closesAt); with --cooperative,
    /// close at once with both signatures.
    Close {
        #[arg(long)]
        channel: B256,
        #[arg(long, requires_all = ["amount", "payer_signature", "payee_signature"])]
        cooperative: bool,
        #[arg(long, value_parser = parse_amount)]
        amount: Option<U256>,
        #[arg(long)]
        payer_signature: Option<Bytes>,
        #[arg(long)]
        payee_signature: Option<Bytes>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// After closesAt: refund the payer the unclaimed rest.
    Withdraw {
        #[arg(long)]
        channel: B256,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// A channel's state, or the channels of a payer or payee.
    #[command(group(ArgGroup::new("which").required(true).args(["channel", "payer", "payee"])))]
    Info {
        #[arg(long)]
        channel: Option<B256>,
        #[arg(long)]
        payer: Option<Address>,
        #[arg(long)]
        payee: Option<Address>,
    },
    /// The payee's watchtower: holds the best vouchers (in --state-dir), settles them before
    /// closesAt minus the margin once the payer requests a close, bidding up a stuck settle.
    /// Runs until Ctrl-C.
    Watch {
        /// Where the best vouchers are kept (each written and fsynced before it is
        /// acknowledged) and reloaded from on restart.
        #[arg(long)]
        state_dir: PathBuf,
        /// Serve `watch_submitVoucher` and `watch_status` over JSON-RPC on this address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also collect for this payee (repeatable; the key's own address always is).
        #[arg(long)]
        payee: Vec<Address>,
        /// Settle before closesAt minus this share of the settle window, and take no voucher
        /// for a closing channel after that.
        #[arg(long, default_value_t = tower::Margin::DEFAULT)]
        margin: tower::Margin,
        /// Refuse vouchers that claim less than this over what was already claimed (wei or btt).
        #[arg(long, value_parser = parse_amount, default_value = "1")]
        min_claim: U256,
        /// Also read voucher JSON lines from a file or a directory of *.json / *.jsonl files
        /// (re-read when they change), or `-` for stdin.
        #[arg(long)]
        vouchers: Option<PathBuf>,
        /// How often to re-read the channels and the head.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        poll_interval: Duration,
        /// The key settles are sent from (its address is a served payee).
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Which key signs.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("signer").required(true).args(["dev_account", "keystore", "home"])))]
pub(crate) struct KeyArgs {
    /// Devnet account N (m/44'/60'/0'/0/N of the test mnemonic; for devnets only).
    #[arg(long)]
    dev_account: Option<u32>,
    /// Web3 Secret Storage (v3) keystore file.
    #[arg(long, requires = "password_file")]
    keystore: Option<PathBuf>,
    /// A node home: its account keystore (HOME/keystore/account.json, `bttd keys new`).
    #[arg(long, requires = "password_file", conflicts_with = "keystore")]
    pub(crate) home: Option<PathBuf>,
    /// File whose first line is the keystore's password.
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
}

impl KeyArgs {
    pub(crate) fn signer(&self) -> eyre::Result<PrivateKeySigner> {
        if let Some(n) = self.dev_account {
            let accounts = bttd_genesis::dev_accounts(n + 1)?;
            let key = accounts[n as usize].private_key;
            return Ok(PrivateKeySigner::from_bytes(&key)?);
        }
        let home_keystore = self.home.as_ref().map(|home| {
            bttd_keys::KeystoreDir::new(home.join(bttd_node::testnet::KEYSTORE_DIR)).account_path()
        });
        let (Some(keystore), Some(password_file)) = (
            self.keystore.as_ref().or(home_keystore.as_ref()),
            &self.password_file,
        ) else {
            bail!(
                "give --dev-account N, --keystore FILE --password-file FILE or --home DIR --password-file FILE"
            );
        };
        let text = std::fs::read_to_string(password_file)
            .wrap_err_with(|| format!("reading {}", password_file.display()))?;
        let password = text.lines().next().unwrap_or_default();
        PrivateKeySigner::decrypt_keystore(keystore, password)
            .wrap_err_with(|| format!("decrypting {}", keystore.display()))
    }
}

/// Wei (decimal or 0x-hex), or BTT with a `btt` suffix.
pub(crate) fn parse_amount(s: &str) -> Result<U256, String> {
    let s = s.trim();
    if let Some(btt) = s.strip_suffix("btt").or_else(|| s.strip_suffix("BTT")) {
        alloy_primitives::utils::parse_ether(btt.trim()).map_err(|e| e.to_string())
    } else {
        U256::from_str(s).map_err(|e| format!("not an amount in wei (or e.g. 1.5btt): {e}"))
    }
}

pub(crate) fn print(v: &Value) {
    println!("{v}");
}

/// The transaction's hash, gas and status as JSON.
pub(crate) fn receipt_json(r: &TransactionReceipt) -> Value {
    json!({
        "transactionHash": r.transaction_hash,
        "blockNumber": r.block_number,
        "gasUsed": r.gas_used,
        "status": r.status(),
    })
}

/// Reads voucher JSON lines from a file or stdin (`-`).
fn read_vouchers(path: &PathBuf) -> eyre::Result<Vec<SignedVoucher>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).wrap_err_with(|| format!("line {}: not a voucher", i + 1))
        })
        .collect()
}

pub fn run(args: ChannelArgs) -> eyre::Result<()> {
    super::init_tracing(&args.log);
    super::runtime()?.block_on(dispatch(args))
}

async fn dispatch(args: ChannelArgs) -> eyre::Result<()> {
    let node = Node::connect(&args.node.rpc_url)?;
    let contract = BANDWIDTH_CHANNELS_ADDRESS;
    match args.command {
        ChannelCommand::Open {
            payee,
            deposit,
            settle_window,
            key,
        } => {
            let call = IBandwidthChannels::openCall {
                payee,
                settleWindow: settle_window,
            };
            let r = node
                .send(&key.signer()?, contract, deposit, calldata(call))
                .await?;
            let opened = r
                .inner
                .logs()
                .iter()
                .find_map(|l| IBandwidthChannels::ChannelOpened::decode_log_data(l.data()).ok())
                .ok_or_else(|| eyre!("no ChannelOpened event in {}", r.transaction_hash))?;
            let mut out = receipt_json(&r);
            out["channelId"] = json!(opened.channelId);
            out["deposit"] = json!(opened.deposit.to_string());
            print(&out);
        }
        ChannelCommand::Topup {
            channel,
            amount,
            key,
        } => {
            let call = IBandwidthChannels::topUpCall { channelId: channel };
            let r = node
                .send(&key.signer()?, contract, amount, calldata(call))
                .await?;
            print(&receipt_json(&r));
        }
        ChannelCommand::Voucher {
            channel,
            amount,
            close,
            chain_id,
            key,
        } => {
            let chain_id = match chain_id {
                Some(id) => id,
                None => node.chain_id().await?,
            };
            let domain = ChannelsDomain::new(chain_id, contract);
            let signer = key.signer()?;
            let line = if close {
                serde_json::to_value(CloseSignature::sign(&domain, &signer, channel, amount)?)?
            } else {
                serde_json::to_value(SignedVoucher::sign(&domain, &signer, channel, amount)?)?
            };
            print(&line);
        }
        ChannelCommand::Settle {
            voucher,
            channel,
            amount,
            signature,
            key,
        } => {
            let v = match (voucher, channel, amount, signature) {
                (Some(json), _, _, _) => serde_json::from_str::<SignedVoucher>(&json)
                    .wrap_err("--voucher is not a voucher JSON line")?,
                (None, Some(channel_id), Some(cumulative_amount), Some(signature)) => {
                    SignedVoucher {
                        channel_id,
                        cumulative_amount,
                        signature,
                    }
                }
                _ => bail!("give --voucher JSON, or --channel, --amount and --signature"),
            };
            StrictSignature::parse(&v.signature)?;
            let call = IBandwidthChannels::settleCall {
                channelId: v.channel_id,
                cumulativeAmount: v.cumulative_amount,
                signature: v.signature,
            };
            let r = node
                .send(&key.signer()?, contract, U256::ZERO, calldata(call))
                .await?;
            print(&receipt_json(&r));
        }
        ChannelCommand::SettleBatch { vouchers, key } => {
            let vs = read_vouchers(&vouchers)?;
            if vs.is_empty() {
                bail!("no vouchers in {}", vouchers.display());
            }
            let call = IBandwidthChannels::settleBatchCall {
                channelIds: vs.iter().map(|v| v.channel_id).collect(),
                cumulativeAmounts: vs.iter().map(|v| v.cumulative_amount).collect(),
                signatures: vs.iter().map(|v| v.signature.clone()).collect(),
            };
            let r = node
                .send(&key.signer()?, contract, U256::ZERO, calldata(call))
                .await?;
            let skipped: Vec<Value> = r
                .inner
                .logs()
                .iter()
                .filter_map(|l| IBandwidthChannels::SettleSkipped::decode_log_data(l.data()).ok())
                .map(|s| json!({ "channelId": s.channelId, "index": s.index.to::<u64>(), "reason": s.reason }))
                .collect();
            let mut out = receipt_json(&r);
            out["vouchers"] = json!(vs.len());
            out["skipped"] = json!(skipped);
            print(&out);
        }
        ChannelCommand::Close {
            channel,
            cooperative,
            amount,
            payer_signature,
            payee_signature,
            key,
        } => {
            let input = if cooperative {
                let (Some(amount), Some(payer_sig), Some(payee_sig)) =
                    (amount, payer_signature, payee_signature)
                else {
                    bail!("--cooperative needs --amount, --payer-signature and --payee-signature");
                };
                calldata(IBandwidthChannels::cooperativeCloseCall {
                    channelId: channel,
                    cumulativeAmount: amount,
                    payerSignature: payer_sig,
                    payeeSignature: payee_sig,
                })
            } else {
                calldata(IBandwidthChannels::requestCloseCall { channelId: channel })
            };
            let r = node
                .send(&key.signer()?, contract, U256::ZERO, input)
                .await?;
            let mut out = receipt_json(&r);
            if let Some(ev) =
                r.inner.logs().iter().find_map(|l| {
                    IBandwidthChannels::CloseRequested::decode_log_data(l.data()).ok()
                })
            {
                out["closesAt"] = json!(ev.closesAt);
            }
            print(&out);
        }
        ChannelCommand::Withdraw { channel, key } => {
            let call = IBandwidthChannels::withdrawCall { channelId: channel };
            let r = node
                .send(&key.signer()?, contract, U256::ZERO, calldata(call))
                .await?;
            let mut out = receipt_json(&r);
            if let Some(ev) = r
                .inner
                .logs()
                .iter()
                .find_map(|l| IBandwidthChannels::Withdrawn::decode_log_data(l.data()).ok())
            {
                out["refunded"] = json!(ev.refunded.to_string());
            }
            print(&out);
        }
        ChannelCommand::Info {
            channel,
            payer,
            payee,
        } => {
            let v = match (channel, payer, payee) {
                (Some(id), _, _) => node.raw("channel_getInfo", vec![json!(id)]).await?,
                (_, Some(a), _) => node.raw("channel_listByPayer", vec![json!(a)]).await?,
                (_, _, Some(a)) => node.raw("channel_listByPayee", vec![json!(a)]).await?,
                _ => bail!("give --channel, --payer or --payee"),
            };
            if v.is_null() {
                bail!("unknown channel");
            }
            print(&v);
        }
        ChannelCommand::Watch {
            state_dir,
            listen,
            payee,
            margin,
            min_claim,
            vouchers,
            poll_interval,
            key,
        } => {
            let signer = key.signer()?;
            let domain = ChannelsDomain::new(node.chain_id().await?, contract);
            let mut payees: std::collections::HashSet<Address> = payee.into_iter().collect();
            payees.insert(signer.address());
            let config = watch::Config {
                policy: tower::Policy {
                    payees,
                    margin,
                    min_claim,
                },
                state_dir,
                listen,
                vouchers,
                poll: poll_interval,
            };
            watch::run(node, signer, domain, config).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("12").unwrap(), U256::from(12));
        assert_eq!(parse_amount("0x10").unwrap(), U256::from(16));
        assert_eq!(
            parse_amount("1.5btt").unwrap(),
            U256::from(15) * U256::from(10u64.pow(17))
        );
        assert!(parse_amount("-1").is_err());
        assert!(parse_amount("1.5").is_err());
        assert!(parse_amount("abc btt").is_err());
    }
}
