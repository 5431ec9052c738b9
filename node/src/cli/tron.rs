//! `bttd tron-sim` (a simulated TRON node for devnets and tests, bttd-tron-sim) and
//! `bttd address` (a TRON address in its three spellings). The logic lives in bridge/.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use bttd_bridge::TronAddress;
use bttd_tron_sim::{DEFAULT_ENERGY_PRICE, SUN_PER_TRX, SimConfig, TRON_TEST_PATH};
use clap::Args;
use eyre::WrapErr;
use serde_json::json;

/// The devnet mnemonic, on TRON's path.
const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[derive(Debug, Args)]
pub struct TronSimArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub http_addr: IpAddr,
    /// Port of the HTTP API (`/wallet/...`, `/walletsolidity/...`) and `/jsonrpc`.
    #[arg(long, default_value_t = 8090)]
    pub http_port: u16,
    /// Interval between blocks (e.g. 3s, 200ms).
    #[arg(long, default_value = "3s")]
    pub block_time: String,
    /// A block is solidified (final) this many blocks after it.
    #[arg(long, default_value_t = 19)]
    pub solidify_depth: u64,
    /// Number of funded accounts.
    #[arg(long, default_value_t = 10)]
    pub accounts: u32,
    /// Balance of each funded account in TRX.
    #[arg(long, default_value_t = 1_000_000)]
    pub balance: u64,
    /// Mnemonic of the funded accounts (derived on m/44'/195'/0'/0/i).
    #[arg(long, default_value = TEST_MNEMONIC)]
    pub mnemonic: String,
    /// Energy price in sun (`getEnergyFee`); energy is revm's gas, not TVM's schedule.
    #[arg(long, default_value_t = DEFAULT_ENERGY_PRICE)]
    pub energy_price: u64,
    /// Keep the chain here and resume from it on the next start (default: in memory only).
    #[arg(long)]
    pub datadir: Option<std::path::PathBuf>,
    /// Print the URL and accounts as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Log filter (tracing's env-filter syntax), written to stderr.
    #[arg(long, default_value = "info")]
    pub log: String,
}

pub fn run_sim(args: TronSimArgs) -> eyre::Result<()> {
    let block_time = humantime::parse_duration(&args.block_time)
        .wrap_err_with(|| format!("--block-time {:?}", args.block_time))?;
    let config = SimConfig {
        addr: SocketAddr::new(args.http_addr, args.http_port),
        block_time,
        solidify_depth: args.solidify_depth,
        accounts: args.accounts,
        balance_trx: args.balance,
        mnemonic: args.mnemonic.clone(),
        energy_price: args.energy_price,
        datadir: args.datadir.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .wrap_err("starting the async runtime")?;
    runtime.block_on(async move {
        let running = bttd_tron_sim::start(config).await?;
        let url = format!("http://{}", running.addr);
        let chain_id = running.chain.lock().chain_id;
        let mut out = std::io::stdout().lock();
        if args.json {
            let accounts: Vec<_> = running
                .accounts
                .iter()
                .map(|a| {
                    json!({
                        "address": a.address.to_base58(),
                        "hex41": a.address.to_hex41(),
                        "evm": a.address.evm().to_string(),
                        "private_key": hex::encode(a.private_key),
                    })
                })
                .collect();
            let line = json!({
                "url": url,
                "jsonrpc": format!("{url}/jsonrpc"),
                "chain_id": chain_id,
                "block_time_ms": block_time.as_millis() as u64,
                "solidify_depth": args.solidify_depth,
                "energy_price": args.energy_price,
                "balance_sun": args.balance.saturating_mul(SUN_PER_TRX),
                "mnemonic": args.mnemonic,
                "path": format!("{TRON_TEST_PATH}i"),
                "accounts": accounts,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "TRON HTTP API: {url} (full node and solidity paths on one port)"
            )?;
            writeln!(out, "JSON-RPC: {url}/jsonrpc")?;
            writeln!(
                out,
                "Blocks every {}, solidified after {} blocks; energy price {} sun",
                args.block_time, args.solidify_depth, args.energy_price
            )?;
            writeln!(out, "Mnemonic: {}", args.mnemonic)?;
            writeln!(out, "Derivation path: {TRON_TEST_PATH}i")?;
            writeln!(out, "Accounts ({} TRX each):", args.balance)?;
            for (i, a) in running.accounts.iter().enumerate() {
                writeln!(
                    out,
                    "({i}) {} key {}",
                    a.address,
                    hex::encode(a.private_key)
                )?;
            }
        }
        out.flush()?;
        drop(out);
        tokio::signal::ctrl_c()
            .await
            .wrap_err("waiting for ctrl-c")?;
        Ok(())
    })
}

#[derive(Debug, Args)]
pub struct AddressArgs {
    /// A TRON address: T... (base58check), 41... (hex) or 0x... (20-byte EVM form).
    pub address: String,
    /// Print {"base58", "hex41", "evm"} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_address(args: AddressArgs) -> eyre::Result<()> {
    let address = TronAddress::parse(&args.address)
        .wrap_err_with(|| format!("{:?} is not a TRON address", args.address))?;
    let (base58, hex41, evm) = (
        address.to_base58(),
        address.to_hex41(),
        address.evm().to_checksum(None),
    );
    if args.json {
        println!("{}", json!({"base58": base58, "hex41": hex41, "evm": evm}));
    } else {
        println!("{base58}\n{hex41}\n{evm}");
    }
    Ok(())
}
