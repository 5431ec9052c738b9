//! The `bttd` command: `devnet` (a local chain in one command), `node` (a persistent node
//! from a genesis file and node.toml) and `genesis` (write genesis files).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use bttd_genesis::{ChainSpec, DevnetOptions, dev_accounts, devnet_genesis};
use bttd_node::config::{NodeConfig, parse_duration};
use bttd_node::producer::ProducerConfig;
use bttd_node::rpc::RpcConfig;
use bttd_node::run::{NodeSettings, launch};
use clap::{Args, Parser, Subcommand};
use eyre::{WrapErr, bail};

#[derive(Debug, Parser)]
#[command(
    name = "bttd",
    version,
    about = "Validator and full node for a BTTC-style proof-of-stake sidechain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local development chain with pre-funded accounts.
    Devnet(DevnetArgs),
    /// Run a persistent node from a genesis file.
    Node(NodeArgs),
    /// Write genesis files.
    #[command(subcommand)]
    Genesis(GenesisCommand),
}

#[derive(Debug, Args)]
struct DevnetArgs {
    /// Keep the chain here and resume from it on the next start (default: a temporary directory removed on exit).
    #[arg(long)]
    datadir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    rpc_addr: IpAddr,
    #[arg(long, default_value_t = 8545)]
    rpc_port: u16,
    /// Interval between blocks (e.g. 1s, 250ms).
    #[arg(long, default_value = "1s")]
    block_time: String,
    /// Number of funded dev accounts.
    #[arg(long, default_value_t = 10)]
    accounts: u32,
    /// Balance of each dev account in BTT.
    #[arg(long, default_value_t = 1_000_000)]
    balance: u64,
    #[arg(long, default_value_t = bttd_genesis::DEVNET_CHAIN_ID)]
    chain_id: u64,
    /// Serve Prometheus metrics and /health on this address.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// tracing filter (also RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// node.toml; every flag below is also a key there.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    datadir: Option<PathBuf>,
    #[arg(long)]
    genesis: Option<PathBuf>,
    #[arg(long)]
    rpc_addr: Option<IpAddr>,
    #[arg(long)]
    rpc_port: Option<u16>,
    #[arg(long)]
    block_time: Option<String>,
    #[arg(long)]
    coinbase: Option<Address>,
    #[arg(long)]
    metrics: Option<SocketAddr>,
    #[arg(long)]
    log: Option<String>,
    /// Sign for the test mnemonic's accounts (eth_sendTransaction, eth_sign, ...), as the devnet does.
    #[arg(long)]
    dev_accounts: bool,
}

#[derive(Debug, Subcommand)]
enum GenesisCommand {
    /// A devnet genesis funding the accounts of the test mnemonic.
    Devnet {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = bttd_genesis::DEVNET_CHAIN_ID)]
        chain_id: u64,
        #[arg(long, default_value_t = 10)]
        accounts: u32,
        /// Balance of each dev account in BTT.
        #[arg(long, default_value_t = 1_000_000)]
        balance: u64,
    },
}

fn init_tracing(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
}

/// The devnet's block producer address (its priority fees go here). Not a dev account, so
/// fee accounting in tests stays unambiguous.
fn devnet_coinbase() -> Address {
    PrivateKeySigner::from_bytes(&keccak256("bttd devnet validator 0"))
        .expect("a keccak output is a valid key")
        .address()
}

fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Genesis(GenesisCommand::Devnet {
            out,
            chain_id,
            accounts,
            balance,
        }) => {
            let options = DevnetOptions {
                chain_id,
                accounts,
                balance_btt: balance,
                ..Default::default()
            };
            let (spec, _) = devnet_genesis(&options)?;
            match out {
                Some(path) => spec.write(&path)?,
                None => println!("{}", spec.to_json()),
            }
            Ok(())
        }
        Command::Devnet(args) => {
            init_tracing(&args.log);
            runtime()?.block_on(devnet(args))
        }
        Command::Node(args) => {
            let mut config = match &args.config {
                Some(path) => NodeConfig::load(path)?,
                None => NodeConfig::default(),
            };
            apply_flags(&mut config, args);
            init_tracing(config.log.as_deref().unwrap_or("info"));
            runtime()?.block_on(node(config))
        }
    }
}

fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .wrap_err("starting the async runtime")
}

fn apply_flags(config: &mut NodeConfig, args: NodeArgs) {
    config.datadir = args.datadir.or(config.datadir.take());
    config.genesis = args.genesis.or(config.genesis.take());
    config.block_time = args.block_time.or(config.block_time.take());
    config.coinbase = args.coinbase.or(config.coinbase);
    config.metrics = args.metrics.or(config.metrics);
    config.log = args.log.or(config.log.take());
    config.dev_accounts |= args.dev_accounts;
    if let Some(addr) = args.rpc_addr {
        config.rpc.addr = addr;
    }
    if let Some(port) = args.rpc_port {
        config.rpc.port = port;
    }
}

fn rpc_config(section: &bttd_node::config::RpcSection) -> RpcConfig {
    RpcConfig {
        addr: SocketAddr::new(section.addr, section.port),
        max_body_bytes: section.max_body_bytes,
        max_batch: section.max_batch,
        max_connections: section.max_connections,
        max_log_range: section.max_log_range,
        gas_cap: section.gas_cap,
        ..RpcConfig::default()
    }
}

async fn node(config: NodeConfig) -> eyre::Result<()> {
    let Some(datadir) = config.datadir.clone() else {
        bail!("missing --datadir (or `datadir` in the config file)")
    };
    let Some(genesis) = config.genesis.clone() else {
        bail!("missing --genesis (or `genesis` in the config file)")
    };
    let spec = ChainSpec::load(&genesis)?;
    let settings = NodeSettings {
        datadir,
        spec,
        rpc: RpcConfig {
            dev_accounts: if config.dev_accounts {
                dev_keys(10)?
            } else {
                Vec::new()
            },
            ..rpc_config(&config.rpc)
        },
        metrics: config.metrics,
        producer: ProducerConfig {
            block_time: config.block_time()?,
            beneficiary: config.coinbase.unwrap_or_else(devnet_coinbase),
        },
        pool: config.pool.pool_config(),
    };
    let node = launch(settings).await?;
    println!("RPC URL: http://{}", node.rpc_addr());
    wait_for_ctrl_c().await;
    node.stop().await;
    Ok(())
}

async fn devnet(args: DevnetArgs) -> eyre::Result<()> {
    let (datadir, _temp) = match &args.datadir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("bttd-devnet-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    std::fs::create_dir_all(&datadir)
        .wrap_err_with(|| format!("creating {}", datadir.display()))?;
    let spec = devnet_spec(&datadir, &args)?;
    let chain_id = spec.genesis.config.chain_id;
    let rpc = RpcConfig {
        addr: SocketAddr::new(args.rpc_addr, args.rpc_port),
        dev_accounts: dev_keys(args.accounts)?,
        ..RpcConfig::default()
    };
    let settings = NodeSettings {
        datadir: datadir.clone(),
        spec,
        rpc,
        metrics: args.metrics,
        producer: ProducerConfig {
            block_time: parse_duration("block-time", &args.block_time)?,
            beneficiary: devnet_coinbase(),
        },
        pool: Default::default(),
    };
    let node = launch(settings).await?;
    print_banner(&args, chain_id, &datadir, &node)?;
    wait_for_ctrl_c().await;
    node.stop().await;
    Ok(())
}

/// The devnet's genesis: the one already in `datadir` (resume), or a new one written there.
fn devnet_spec(datadir: &Path, args: &DevnetArgs) -> eyre::Result<ChainSpec> {
    let path = datadir.join("genesis.json");
    if path.exists() {
        let spec = ChainSpec::load(&path)?;
        tracing::info!(target: "bttd::devnet", path = %path.display(), "resuming the devnet in this datadir");
        return Ok(spec);
    }
    let options = DevnetOptions {
        chain_id: args.chain_id,
        accounts: args.accounts,
        balance_btt: args.balance,
        ..Default::default()
    };
    let (spec, _) = devnet_genesis(&options)?;
    spec.write(&path)?;
    Ok(spec)
}

/// The private keys of the first `count` dev accounts, for the RPC to sign with.
fn dev_keys(count: u32) -> eyre::Result<Vec<B256>> {
    Ok(dev_accounts(count)?
        .into_iter()
        .map(|account| account.private_key)
        .collect())
}

fn print_banner(
    args: &DevnetArgs,
    chain_id: u64,
    datadir: &Path,
    node: &bttd_node::run::RunningNode,
) -> eyre::Result<()> {
    let accounts = dev_accounts(args.accounts)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nbttd devnet {}\n", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "Available Accounts\n==================")?;
    for (i, account) in accounts.iter().enumerate() {
        writeln!(out, "({i}) {} ({} BTT)", account.address, args.balance)?;
    }
    writeln!(out, "\nPrivate Keys\n==================")?;
    for (i, account) in accounts.iter().enumerate() {
        writeln!(out, "({i}) {}", account.private_key)?;
    }
    writeln!(out, "\nMnemonic: {}", bttd_genesis::DEV_MNEMONIC)?;
    writeln!(out, "Derivation path: m/44'/60'/0'/0/i\n")?;
    writeln!(out, "Chain ID: {chain_id}")?;
    writeln!(out, "Fee pool: {}", node.ctx.chain.config().fee_pool)?;
    writeln!(out, "Block producer: {}", devnet_coinbase())?;
    writeln!(out, "Datadir: {}", datadir.display())?;
    if let Some(addr) = node.metrics_addr {
        writeln!(out, "Metrics: http://{addr}/metrics")?;
    }
    writeln!(out, "RPC URL: http://{}", node.rpc_addr())?;
    writeln!(out, "WebSocket URL: ws://{}", node.rpc_addr())?;
    out.flush()?;
    Ok(())
}

async fn wait_for_ctrl_c() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!(target: "bttd::node", "shutting down");
}
