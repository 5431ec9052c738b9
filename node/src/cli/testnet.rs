//! `bttd testnet init`: writes a genesis and one home per validator (and per full node) for a
//! local multi-validator network; the work is [`bttd_node::testnet::init`].

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use bttd_node::testnet::{TestnetOptions, init};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Write DIR/genesis.json and DIR/node0 .. DIR/node{N-1} (and DIR/full0 ..), each started
    /// with `bttd node --home DIR/node{i}`.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of full nodes (homes without validator keys).
    #[arg(long, default_value_t = 0)]
    full_nodes: usize,
    /// Output directory (must be absent or empty).
    #[arg(long)]
    out: PathBuf,
    /// Node i serves JSON-RPC on rpc-port + i (full nodes after the validators).
    #[arg(long, default_value_t = 8545)]
    rpc_port: u16,
    /// Node i listens for libp2p on p2p-port + i.
    #[arg(long, default_value_t = 30303)]
    p2p_port: u16,
    /// Address the nodes bind to and reach each other on.
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,
    #[arg(long, default_value_t = bttd_genesis::DEVNET_CHAIN_ID)]
    chain_id: u64,
    /// Number of funded dev accounts (the test mnemonic's).
    #[arg(long, default_value_t = 10)]
    accounts: u32,
    /// Balance of each dev account and each validator account in BTT.
    #[arg(long, default_value_t = 1_000_000)]
    balance: u64,
    /// Interval between blocks (e.g. 1s, 250ms).
    #[arg(long, default_value = "1s")]
    block_time: String,
    /// Voting power of each validator.
    #[arg(long, default_value_t = 100)]
    power: u64,
    /// Blocks per validator-set epoch.
    #[arg(long, default_value_t = bttd_genesis::BttdParams::default().epoch_length)]
    epoch_length: u64,
    /// Epochs an undelegated stake stays slashable (genesis `unbondingEpochs`; devnet value
    /// when absent, as for the other staking keys below).
    #[arg(long)]
    unbonding_epochs: Option<u64>,
    /// Share of the stake bonded at a double-sign offence that is slashed (bps).
    #[arg(long)]
    slash_double_sign_bps: Option<u16>,
    /// Share of the bonded stake slashed on a downtime jail (bps).
    #[arg(long)]
    slash_downtime_bps: Option<u16>,
    /// Blocks per downtime window.
    #[arg(long)]
    downtime_window: Option<u64>,
    /// Jail a validator that signs fewer than this share of a window's blocks (bps).
    #[arg(long)]
    downtime_min_signed_bps: Option<u16>,
    /// Epochs a validator jailed for downtime waits before `unjail()` works.
    #[arg(long)]
    jail_epochs: Option<u64>,
    /// Print the layout as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: TestnetCommand) -> eyre::Result<()> {
    let TestnetCommand::Init(args) = command;
    let devnet = bttd_genesis::StakingParams::devnet();
    let staking = bttd_genesis::StakingParams {
        unbonding_epochs: args.unbonding_epochs.unwrap_or(devnet.unbonding_epochs),
        slash_double_sign_bps: args
            .slash_double_sign_bps
            .unwrap_or(devnet.slash_double_sign_bps),
        slash_downtime_bps: args.slash_downtime_bps.unwrap_or(devnet.slash_downtime_bps),
        downtime_window: args.downtime_window.unwrap_or(devnet.downtime_window),
        downtime_min_signed_bps: args
            .downtime_min_signed_bps
            .unwrap_or(devnet.downtime_min_signed_bps),
        jail_epochs: args.jail_epochs.unwrap_or(devnet.jail_epochs),
        ..devnet
    };
    let options = TestnetOptions {
        out: args.out,
        validators: args.validators,
        full_nodes: args.full_nodes,
        rpc_port: args.rpc_port,
        p2p_port: args.p2p_port,
        addr: args.addr,
        chain_id: args.chain_id,
        accounts: args.accounts,
        balance_btt: args.balance,
        block_time: args.block_time,
        power: args.power,
        epoch_length: args.epoch_length,
        staking,
        ..TestnetOptions::default()
    };
    let layout = init(&options)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let nodes: Vec<_> = layout
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.name,
                    "home": n.home,
                    "rpcUrl": n.rpc_url(options.addr),
                    "p2pPort": n.p2p_port,
                    "peerId": n.peer_id.to_string(),
                    "multiaddr": n.multiaddr,
                    "validator": n.validator,
                })
            })
            .collect();
        let json = serde_json::json!({
            "genesis": layout.genesis,
            "genesisHash": layout.spec.genesis_hash()?,
            "chainId": layout.spec.genesis.config.chain_id,
            "nodes": nodes,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(out, "Genesis: {}", layout.genesis.display())?;
        writeln!(out, "Chain ID: {}", layout.spec.genesis.config.chain_id)?;
        for node in &layout.nodes {
            let role = match &node.validator {
                Some(v) => format!("validator {}", v.address),
                None => "full node".to_string(),
            };
            writeln!(
                out,
                "{:<6} {}  RPC {}  P2P {}  ({role})",
                node.name,
                node.home.display(),
                node.rpc_url(options.addr),
                node.multiaddr,
            )?;
        }
        writeln!(
            out,
            "Start each with: bttd node --home {}",
            layout.dir.join("<name>").display()
        )?;
    }
    out.flush()?;
    Ok(())
}
