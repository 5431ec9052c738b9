//! Test harness for whole nodes: starts the real `bttd` binary on free loopback ports, talks
//! to it over real JSON-RPC, kills it (SIGKILL or SIGTERM) and restarts it. A node's log is kept
//! in its datadir and printed when a test fails; children are killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, TxKind, U256, hex};
use alloy_signer_local::PrivateKeySigner;
use eyre::{Result, WrapErr, bail, eyre};
use serde_json::{Value, json};

pub const BTTD: &str = env!("CARGO_BIN_EXE_bttd");
pub const DEV_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804aeab365a",
];

/// The binary under test: `BTTD_E2E_BIN` if set (to run a test against another build, e.g. to
/// see a regression test fail on the commit before a fix), else the one cargo built.
pub fn bttd_bin() -> String {
    std::env::var("BTTD_E2E_BIN").unwrap_or_else(|_| BTTD.to_string())
}

pub fn free_port() -> u16 {
    free_port_range(1)
}

/// Ports the tests hand out: below Linux's ephemeral range (32768-60999), so the kernel never
/// gives one to an outgoing connection between our check and the node's bind. Picking from the
/// ephemeral range made a 4-validator devnet fail now and then with "Address already in use"
/// on validator 1's RPC port while other tests' clients were connecting.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A base port with `count` free loopback ports after it, chosen at random in [`TEST_PORTS`]
/// (best effort: a concurrent test may still pick the same range before the node binds it).
pub fn free_port_range(count: u16) -> u16 {
    use rand_08::Rng;
    let mut rng = rand_08::thread_rng();
    loop {
        let base = rng.gen_range(TEST_PORTS.start..TEST_PORTS.end - count);
        if (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A running `bttd devnet` process.
pub struct Devnet {
    child: Option<Child>,
    pub rpc_url: String,
    pub ws_url: String,
    pub log: PathBuf,
    http: reqwest::blocking::Client,
}

impl Devnet {
    /// Starts `bttd devnet --datadir <datadir> --rpc-port <free> <extra...>` and waits until
    /// it prints its RPC URL and answers eth_chainId.
    pub fn start(datadir: &Path, extra: &[&str]) -> Result<Self> {
        Self::start_on(datadir, free_port(), extra)
    }

    /// Like [`Devnet::start`], serving RPC from `port` (validator i of a multi-validator
    /// devnet on `port + i`).
    fn start_on(datadir: &Path, port: u16, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(datadir)?;
        let mut args: Vec<String> = vec!["devnet".into(), "--datadir".into()];
        args.push(datadir.display().to_string());
        args.extend(["--rpc-port".into(), port.to_string()]);
        args.extend(["--log".into(), "info,bttd=debug".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(&args, datadir, port)
    }

    /// `bttd devnet --validators 4 --block-time 200ms` on free RPC and p2p ports; its RPC URL
    /// is validator 0's.
    pub fn start_four_validators(datadir: &Path) -> Result<Self> {
        Self::start_validators(datadir, 4, "200ms", &[])
    }

    /// `bttd devnet --validators <count> --block-time <block_time> <extra>` with validator i
    /// on free RPC port `p + i` and p2p port `q + i`; its RPC URL is validator 0's.
    pub fn start_validators(
        datadir: &Path,
        count: u16,
        block_time: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let rpc = free_port_range(count);
        let p2p = free_port_range(count).to_string();
        let count = count.to_string();
        let mut args = vec![
            "--validators",
            &count,
            "--block-time",
            block_time,
            "--p2p-port",
            &p2p,
        ];
        args.extend_from_slice(extra);
        Self::start_on(datadir, rpc, &args)
    }

    /// Starts `bttd node --home <home>` (its config names the RPC port) with its log in
    /// `home`, and waits until it answers.
    pub fn start_home(home: &Path, rpc_port: u16) -> Result<Self> {
        let args: Vec<String> = vec![
            "node".into(),
            "--home".into(),
            home.display().to_string(),
            "--log".into(),
            "info,bttd=debug,libp2p=info".into(),
        ];
        Self::spawn(&args, home, rpc_port)
    }

    /// Like [`Devnet::start_home`], with extra arguments and environment variables.
    pub fn start_home_with(
        home: &Path,
        rpc_port: u16,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        let mut args: Vec<String> = vec![
            "node".into(),
            "--home".into(),
            home.display().to_string(),
            "--log".into(),
            "info,bttd=debug,libp2p=info".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_with(&args, home, rpc_port, envs)
    }

    /// Starts `bttd <args>` (which must print its RPC URL, as `devnet` and `node` do) with its
    /// log in `log_dir`.
    pub fn spawn(args: &[String], log_dir: &Path, port: u16) -> Result<Self> {
        Self::spawn_with(args, log_dir, port, &[])
    }

    fn spawn_with(
        args: &[String],
        log_dir: &Path,
        port: u16,
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        let log = log_dir.join(format!(
            "bttd-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        let log_file = std::fs::File::create(&log)?;
        let mut child = Command::new(bttd_bin())
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .wrap_err("spawning bttd")?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("RPC URL: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut devnet = Self {
            child: Some(child),
            rpc_url: String::new(),
            ws_url: format!("ws://127.0.0.1:{port}"),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| eyre!("bttd printed no RPC URL\n{}", devnet.log_text()))?;
        devnet.rpc_url = url;
        devnet.call("eth_chainId", json!([]))?;
        Ok(devnet)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal (`STOP`, `CONT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().ok_or_else(|| eyre!("not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// Waits until the process exits on its own (`Ok(None)` if it still runs at the timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().ok_or_else(|| eyre!("not running"))?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| eyre!("not running"))?;
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("bttd did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One JSON-RPC call; a JSON-RPC error becomes Err.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.call_at(&self.rpc_url, method, params)
    }

    /// The RPC URL of validator `i` of a `--validators N` devnet (rpc-port + i).
    pub fn validator_url(&self, i: u16) -> Result<String> {
        let (base, port) = self
            .rpc_url
            .rsplit_once(':')
            .ok_or_else(|| eyre!("no port in {}", self.rpc_url))?;
        let port: u16 = port.trim_end_matches('/').parse()?;
        Ok(format!("{base}:{}", port + i))
    }

    /// [`Devnet::call`] against another URL (another validator of the same devnet).
    pub fn call_at(&self, url: &str, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self.http.post(url).json(&body).send()?.json()?;
        if let Some(error) = response.get("error") {
            bail!("{method} failed: {error}");
        }
        response
            .get("result")
            .cloned()
            .ok_or_else(|| eyre!("{method}: no result in {response}"))
    }

    /// Posts any JSON body and returns the parsed response.
    pub fn raw(&self, body: Value) -> Result<Value> {
        Ok(self.http.post(&self.rpc_url).json(&body).send()?.json()?)
    }

    pub fn block_number(&self) -> Result<u64> {
        quantity(&self.call("eth_blockNumber", json!([]))?)
    }

    pub fn balance(&self, address: Address) -> Result<U256> {
        let v = self.call("eth_getBalance", json!([address, "latest"]))?;
        Ok(v.as_str()
            .ok_or_else(|| eyre!("balance not a string"))?
            .parse()?)
    }

    pub fn nonce(&self, address: Address, tag: &str) -> Result<u64> {
        quantity(&self.call("eth_getTransactionCount", json!([address, tag]))?)
    }

    pub fn send_raw(&self, raw: &[u8]) -> Result<B256> {
        let v = self.call(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        )?;
        Ok(serde_json::from_value(v)?)
    }

    /// Waits for a receipt (None after the timeout).
    pub fn wait_receipt(&self, hash: B256, timeout: Duration) -> Result<Option<Value>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let receipt = self.call("eth_getTransactionReceipt", json!([hash]))?;
            if !receipt.is_null() {
                return Ok(Some(receipt));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(None)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- bttd log ({}) ----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

pub fn quantity(v: &Value) -> Result<u64> {
    let s = v.as_str().ok_or_else(|| eyre!("not a quantity: {v}"))?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

pub fn signer(index: usize) -> PrivateKeySigner {
    DEV_KEYS[index].parse().unwrap()
}

/// A signed EIP-1559 value transfer.
pub fn transfer_1559(
    key: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    max_fee: u128,
    tip: u128,
) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(to),
        value,
        ..Default::default()
    };
    sign(key, tx)
}

pub fn sign<T: SignableTransaction<alloy_primitives::Signature>>(
    key: &PrivateKeySigner,
    tx: T,
) -> Vec<u8>
where
    alloy_consensus::Signed<T>: Into<TxEnvelope>,
{
    use alloy_signer::SignerSync;
    let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    envelope.encoded_2718()
}

/// Where the node's JS clients live, with their dependencies installed (scripts/setup).
pub fn js_dir() -> PathBuf {
    repo_root().join("tests/js")
}
