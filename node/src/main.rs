//! The `bttd` command: `devnet` (a local chain in one command), `node` (a persistent node
//! from a genesis file and node.toml) and `genesis` (write genesis files).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::{Address, B256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use bttd_consensus::TimeoutConfig;
use bttd_genesis::{ChainSpec, DevnetOptions, dev_accounts, devnet_genesis};
use bttd_node::config::{NodeConfig, parse_duration};
use bttd_node::consensus::{EngineSettings, ValidatorKey};
use bttd_node::producer::ProducerConfig;
use bttd_node::run::{ConsensusSettings, NodeSettings, launch};
use bttd_node::supervisor::TaskFailure;
use bttd_rpc::{Api, RpcConfig};
use bttd_txpool::PoolConfig;
use bttd_txpool::devnet::MiningMode;
use clap::{Args, Parser, Subcommand};
use eyre::{WrapErr, bail};

mod allocator;
mod cli;

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
    /// Bandwidth payment channels: open, pay with vouchers, settle, close, watch.
    Channel(cli::channel::ChannelArgs),
    /// Stake as a validator or delegator: register, delegate, undelegate, withdraw, claim.
    Validator(cli::validator::ValidatorArgs),
    /// Offer a steady rate of signed transfers and measure send-to-finalized latency.
    Loadgen(cli::loadgen::LoadgenArgs),
    /// Create, show and import a validator's keys (account and BLS keystores).
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Write a local multi-validator network: a genesis and one node home per node.
    #[command(subcommand)]
    Testnet(cli::testnet::TestnetCommand),
    /// Export or import a validator's slashing-protection record.
    #[command(subcommand, name = "slashing-protection")]
    SlashingProtection(cli::slashing::SlashingCommand),
    /// Run a simulated TRON node (java-tron's HTTP API and /jsonrpc) for devnets and tests.
    TronSim(cli::tron::TronSimArgs),
    /// Print a TRON address in its three spellings (base58check, 41-hex, EVM).
    Address(cli::tron::AddressArgs),
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
    /// Mine a block as soon as a transaction arrives (eth_sendRawTransaction answers once it is
    /// committed) instead of every --block-time, as anvil does by default.
    #[arg(long, conflicts_with = "no_mining")]
    automine: bool,
    /// Mine only when asked (evm_mine, anvil_mine).
    #[arg(long)]
    no_mining: bool,
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
    /// Memory budget of each validator's database in MiB (block cache and memtables); a node's
    /// default is 512.
    #[arg(long, default_value_t = bttd_node::config::DEVNET_CACHE_MB)]
    cache_mb: usize,
    /// tracing filter (also RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
    /// Validators: 1 runs a single block producer; N > 1 runs N real libp2p validators in
    /// this process, each with its own datadir, validator i serving RPC on rpc-port + i.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    validators: u16,
    /// With --validators N > 1: validator i listens for libp2p on p2p-port + i.
    #[arg(long, default_value_t = 30303)]
    p2p_port: u16,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// Node home: reads HOME/config.toml (unless --config is given); relative paths in the
    /// config resolve against HOME and the datadir defaults to HOME/data.
    #[arg(long)]
    home: Option<PathBuf>,
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
    /// Sign from the start instead of first watching the network for another instance of this
    /// validator's key (doppelganger protection: by default a starting validator signs only
    /// after 2 heights decided by votes, or 10 s without any, in which it saw no message
    /// signed with its key above its slashing-protection record; if it sees one it stops with
    /// an error). Only when sure no other instance runs.
    #[arg(long)]
    disable_doppelganger_protection: bool,
    /// Test-only fault injection: the consensus engine panics when about to commit this
    /// height. Refused unless BTTD_FAULT_INJECTION=1 (docs/architecture.md, Decisions).
    #[arg(long, hide = true)]
    fault_panic_at_height: Option<u64>,
}

/// The environment variable that unlocks the hidden fault-injection flags.
const FAULT_INJECTION_ENV: &str = "BTTD_FAULT_INJECTION";

/// Checks a fault-injection request: only honoured with `BTTD_FAULT_INJECTION=1`.
fn fault_injection(panic_at_height: Option<u64>) -> eyre::Result<Option<u64>> {
    let Some(height) = panic_at_height else {
        return Ok(None);
    };
    if std::env::var(FAULT_INJECTION_ENV).as_deref() != Ok("1") {
        bail!(
            "--fault-panic-at-height is a test-only fault injection; it needs {FAULT_INJECTION_ENV}=1"
        );
    }
    tracing::warn!(target: "bttd::node", height, "FAULT INJECTION: the consensus engine will panic at this height");
    Ok(Some(height))
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
            cli::init_tracing(&args.log);
            cli::runtime()?.block_on(devnet(args))
        }
        Command::Keys(command) => cli::keys::run(command),
        Command::Testnet(command) => cli::testnet::run(command),
        Command::SlashingProtection(command) => cli::slashing::run(command),
        Command::Channel(args) => cli::channel::run(args),
        Command::Validator(args) => cli::validator::run(args),
        Command::Loadgen(args) => cli::loadgen::run(args),
        Command::TronSim(args) => {
            cli::init_tracing(&args.log);
            cli::tron::run_sim(args)
        }
        Command::Address(args) => cli::tron::run_address(args),
        Command::Node(args) => {
            let config_path = args.config.clone().or_else(|| {
                args.home
                    .as_ref()
                    .map(|home| home.join(bttd_node::testnet::CONFIG_FILE))
            });
            let mut config = match &config_path {
                Some(path) => NodeConfig::load(path)?,
                None => NodeConfig::default(),
            };
            let home = args.home.clone();
            if let Some(home) = &home {
                config.resolve_paths(home);
            }
            let fault = args.fault_panic_at_height;
            apply_flags(&mut config, args);
            cli::init_tracing(config.log.as_deref().unwrap_or("info"));
            let panic_at_height = fault_injection(fault)?;
            cli::runtime()?.block_on(node(config, home, panic_at_height))
        }
    }
}

fn cache_bytes(cache_mb: usize) -> eyre::Result<usize> {
    let section = bttd_node::config::StorageSection { cache_mb };
    Ok(section.cache_bytes()?)
}

fn apply_flags(config: &mut NodeConfig, args: NodeArgs) {
    config.datadir = args.datadir.or(config.datadir.take());
    config.genesis = args.genesis.or(config.genesis.take());
    config.block_time = args.block_time.or(config.block_time.take());
    config.coinbase = args.coinbase.or(config.coinbase);
    config.metrics = args.metrics.or(config.metrics);
    config.log = args.log.or(config.log.take());
    config.dev_accounts |= args.dev_accounts;
    config.disable_doppelganger_protection |= args.disable_doppelganger_protection;
    if let Some(addr) = args.rpc_addr {
        config.rpc.addr = addr;
    }
    if let Some(port) = args.rpc_port {
        config.rpc.port = port;
    }
}

fn rpc_config(section: &bttd_node::config::RpcSection) -> eyre::Result<RpcConfig> {
    Ok(RpcConfig {
        addr: SocketAddr::new(section.addr, section.port),
        max_body_bytes: section.max_body_bytes,
        max_response_bytes: section.batch_response_max_size,
        batch_request_limit: section.batch_request_limit,
        max_connections: section.max_connections,
        max_subscriptions_per_connection: section.max_subscriptions_per_connection,
        max_log_range: section.max_log_range,
        gas_cap: section.gas_cap,
        evm_timeout: parse_duration("rpc.evm-timeout", &section.evm_timeout)?,
        max_filters: section.max_filters,
        max_concurrent_heavy: section
            .max_concurrent_heavy
            .unwrap_or_else(bttd_rpc::default_concurrent_heavy),
        api: section.api.iter().copied().collect(),
        ..RpcConfig::default()
    })
}

/// The settings of `bttd node` from a resolved config.
fn node_settings(
    config: &NodeConfig,
    home: Option<&Path>,
    panic_at_height: Option<u64>,
) -> eyre::Result<NodeSettings> {
    let Some(datadir) = config.datadir.clone() else {
        bail!("missing --datadir (or `datadir` in the config file)")
    };
    let Some(genesis) = config.genesis.clone() else {
        bail!("missing --genesis (or `genesis` in the config file)")
    };
    let spec = ChainSpec::load(&genesis)?;
    let validator = validator_keys(config, home, &spec)?;
    if let (Some(keys), Some(coinbase)) = (&validator, config.coinbase) {
        bail!(
            "`coinbase` ({coinbase}) cannot be set on a validator node: the miner of its blocks is always the validator's account {} (voters refuse any other); remove `coinbase` from node.toml or --coinbase",
            keys.address()
        );
    }
    let mut rpc = rpc_config(&config.rpc)?;
    if config.dev_accounts {
        // Signing for dev accounts is the `dev` namespace: asking for the one means the other.
        rpc.dev_accounts = dev_keys(10)?;
        rpc.api.insert(Api::Dev);
    }
    let settings = NodeSettings {
        datadir,
        spec,
        rpc,
        metrics: config.metrics,
        storage_cache_bytes: config.storage.cache_bytes()?,
        producer: ProducerConfig {
            block_time: config.block_time()?,
            beneficiary: config
                .coinbase
                .or(validator.as_ref().map(|keys| keys.address()))
                .unwrap_or_else(devnet_coinbase),
            devnet: None,
        },
        pool: config.txpool.pool_config()?,
        consensus: Some(consensus_settings(config, validator, panic_at_height)?),
    };
    Ok(settings)
}

async fn node(
    config: NodeConfig,
    home: Option<PathBuf>,
    panic_at_height: Option<u64>,
) -> eyre::Result<()> {
    let settings = node_settings(&config, home.as_deref(), panic_at_height)?;
    let node = launch(settings).await?;
    println!("RPC URL: http://{}", node.rpc_addr());
    let outcome = wait_for_stop(node.failed()).await;
    node.stop().await;
    Ok(outcome?)
}

/// How this node takes part in consensus (used when the genesis names validators): the
/// `[p2p]` section, and the validator key if `[validator]` is present (a full node otherwise).
fn consensus_settings(
    config: &NodeConfig,
    validator: Option<bttd_keys::ValidatorKeys>,
    panic_at_height: Option<u64>,
) -> eyre::Result<ConsensusSettings> {
    let block_time = config.block_time()?;
    Ok(ConsensusSettings {
        p2p: config.p2p.clone(),
        engine: EngineSettings {
            key: validator.map(|keys| ValidatorKey {
                address: keys.address(),
                bls: keys.bls,
            }),
            block_time,
            // Followers wait for the proposal one block time plus a margin that covers
            // verifying a full block (about 1.4k transfers at 30M gas) on a loaded machine.
            timeouts: TimeoutConfig {
                propose: block_time + Duration::from_secs(2),
                ..TimeoutConfig::default()
            },
            slashing_db: config
                .validator
                .as_ref()
                .map(|v| v.slashing_db.clone())
                .unwrap_or_else(|| PathBuf::from("slashing-protection.json")),
            panic_at_height,
            doppelganger: (!config.disable_doppelganger_protection)
                .then(bttd_engine::DoppelgangerWatch::default),
        },
    })
}

/// Loads and checks the keys of `[validator]` and logs the validator's place in the genesis set.
fn validator_keys(
    config: &NodeConfig,
    home: Option<&Path>,
    spec: &ChainSpec,
) -> eyre::Result<Option<bttd_keys::ValidatorKeys>> {
    let Some(section) = &config.validator else {
        if !spec.params.validators.is_empty() {
            tracing::info!(target: "bttd::node", "no [validator] section: running as a full node");
        }
        return Ok(None);
    };
    let keys = bttd_keys::load_validator_keys(section, home.unwrap_or(Path::new(".")))?;
    let index = match spec.validator_set() {
        Ok(set) => set.index_of(&keys.bls_public_key()),
        Err(bttd_genesis::GenesisError::NoValidators) => None,
        Err(e) => return Err(e.into()),
    };
    match index {
        Some(index) => tracing::info!(
            target: "bttd::node", index, address = %keys.address(), bls_public_key = %keys.bls_public_key(),
            "validator keys loaded; this node is validator {index} of the genesis set"
        ),
        None => tracing::warn!(
            target: "bttd::node", address = %keys.address(), bls_public_key = %keys.bls_public_key(),
            "validator keys loaded, but the genesis set does not contain this BLS key"
        ),
    }
    Ok(Some(keys))
}

async fn devnet(args: DevnetArgs) -> eyre::Result<()> {
    if args.validators > 1 {
        return multi_validator_devnet(args).await;
    }
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
        api: Api::ALL.into_iter().collect(),
        ..RpcConfig::default()
    };
    let settings = NodeSettings {
        datadir: datadir.clone(),
        spec,
        rpc,
        metrics: args.metrics,
        storage_cache_bytes: cache_bytes(args.cache_mb)?,
        producer: ProducerConfig {
            block_time: parse_duration("block-time", &args.block_time)?,
            beneficiary: devnet_coinbase(),
            devnet: Some(mining_mode(&args)?),
        },
        pool: PoolConfig::devnet(),
        consensus: None,
    };
    let node = launch(settings).await?;
    print_banner(&args, chain_id, &datadir, &node)?;
    let outcome = wait_for_stop(node.failed()).await;
    node.stop().await;
    Ok(outcome?)
}

/// The devnet's starting mining mode from --automine, --no-mining and --block-time.
fn mining_mode(args: &DevnetArgs) -> eyre::Result<MiningMode> {
    Ok(if args.automine {
        MiningMode::Auto
    } else if args.no_mining {
        MiningMode::Never
    } else {
        MiningMode::Interval(parse_duration("block-time", &args.block_time)?)
    })
}

/// `bttd devnet --validators N`: a testnet made by `bttd testnet init` in the datadir (or
/// resumed from it), every validator launched in this process over real libp2p on loopback.
/// Blocks per epoch of `bttd devnet --validators N`: short, so staking changes (a new
/// validator, a stake shift, a leave) take effect within seconds, as a devnet user expects.
const DEVNET_EPOCH_LENGTH: u64 = 32;

async fn multi_validator_devnet(args: DevnetArgs) -> eyre::Result<()> {
    if args.automine || args.no_mining {
        bail!(
            "--automine and --no-mining exist only on a single-producer devnet (without --validators)"
        );
    }
    let (dir, _temp) = match &args.datadir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("bttd-devnet-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let count = usize::from(args.validators);
    // The network lives in a subdirectory: the datadir may already hold other files (logs).
    let dir = dir.join("network");
    if !dir.join("genesis.json").exists() {
        bttd_node::testnet::init(&bttd_node::testnet::TestnetOptions {
            out: dir.clone(),
            validators: count,
            rpc_port: args.rpc_port,
            p2p_port: args.p2p_port,
            addr: args.rpc_addr,
            chain_id: args.chain_id,
            accounts: args.accounts,
            balance_btt: args.balance,
            block_time: args.block_time.clone(),
            epoch_length: DEVNET_EPOCH_LENGTH,
            ..Default::default()
        })?;
    } else {
        tracing::info!(target: "bttd::devnet", dir = %dir.display(), "resuming the devnet in this datadir");
    }
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        let home = dir.join(format!("node{i}"));
        let mut config = NodeConfig::load(&home.join("config.toml"))?;
        config.resolve_paths(&home);
        config.dev_accounts = true;
        // All of the devnet's validators start at once, from this process and its own
        // datadir: there is no other instance to watch for, and the watch would only hold
        // back the first block of every start by its quiet period.
        config.disable_doppelganger_protection = true;
        config.metrics = if i == 0 { args.metrics } else { None };
        config.storage.cache_mb = args.cache_mb;
        let mut settings = node_settings(&config, Some(&home), None)?;
        settings.pool = PoolConfig::devnet();
        settings.rpc.api = Api::ALL.into_iter().collect();
        nodes.push(
            launch(settings)
                .await
                .wrap_err_with(|| format!("starting validator {i}"))?,
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nbttd devnet {}: {count} validators\n",
        env!("CARGO_PKG_VERSION")
    )?;
    print_accounts(&mut out, args.accounts, args.balance)?;
    writeln!(out, "Chain ID: {}", args.chain_id)?;
    writeln!(out, "Datadir: {}", dir.display())?;
    for (i, node) in nodes.iter().enumerate() {
        writeln!(out, "Validator {i} RPC URL: http://{}", node.rpc_addr())?;
    }
    writeln!(out, "RPC URL: http://{}", nodes[0].rpc_addr())?;
    out.flush()?;
    drop(out);
    let any_failed = futures::future::select_all(nodes.iter().map(|node| Box::pin(node.failed())));
    let outcome = wait_for_stop(async move { any_failed.await.0 }).await;
    for node in nodes {
        node.stop().await;
    }
    Ok(outcome?)
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

/// The dev accounts, their keys and the mnemonic, as anvil prints them.
fn print_accounts(out: &mut impl Write, count: u32, balance: u64) -> eyre::Result<()> {
    let accounts = dev_accounts(count)?;
    writeln!(out, "Available Accounts\n==================")?;
    for (i, account) in accounts.iter().enumerate() {
        writeln!(out, "({i}) {} ({balance} BTT)", account.address)?;
    }
    writeln!(out, "\nPrivate Keys\n==================")?;
    for (i, account) in accounts.iter().enumerate() {
        writeln!(out, "({i}) {}", account.private_key)?;
    }
    writeln!(out, "\nMnemonic: {}", bttd_genesis::DEV_MNEMONIC)?;
    writeln!(out, "Derivation path: m/44'/60'/0'/0/i\n")?;
    Ok(())
}

fn print_banner(
    args: &DevnetArgs,
    chain_id: u64,
    datadir: &Path,
    node: &bttd_node::run::RunningNode,
) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nbttd devnet {}\n", env!("CARGO_PKG_VERSION"))?;
    print_accounts(&mut out, args.accounts, args.balance)?;
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

/// Waits for ctrl-c / SIGTERM (`Ok`) or the failure of a critical task (`Err`; the supervisor
/// has logged it), whichever comes first.
async fn wait_for_stop(
    failed: impl std::future::Future<Output = TaskFailure>,
) -> Result<(), TaskFailure> {
    tokio::select! {
        () = wait_for_ctrl_c() => Ok(()),
        failure = failed => Err(failure),
    }
}

async fn wait_for_ctrl_c() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!(target: "bttd::node", "shutting down");
}
