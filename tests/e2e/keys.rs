//! `bttd keys new|show|import` and `bttd testnet init` through the real binary, and
//! `bttd node --home` started from a generated home.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bttd_genesis::ChainSpec;
use bttd_node::config::NodeConfig;
use eyre::{Result, bail, ensure, eyre};
use serde_json::{Value, json};

use crate::support::{BTTD, DEV_KEYS};

/// The secret and public key of the EIP-2335 test vectors: importing the raw secret must
/// give this public key.
const EIP2335_SECRET: &str = "0x000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const EIP2335_PUBKEY: &str = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";

fn bttd(args: &[&str]) -> Result<Output> {
    Ok(Command::new(BTTD).args(args).output()?)
}

/// Runs bttd and parses its standard output as JSON; fails with its stderr otherwise.
fn bttd_json(args: &[&str]) -> Result<Value> {
    let out = bttd(args)?;
    ensure!(
        out.status.success(),
        "bttd {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn bttd_fails(args: &[&str]) -> Result<String> {
    let out = bttd(args)?;
    ensure!(!out.status.success(), "bttd {args:?} should have failed");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn public_parts(info: &Value) -> (Value, Value, Value) {
    (
        info["address"].clone(),
        info["blsPublicKey"].clone(),
        info["proofOfPossession"].clone(),
    )
}

/// Lists everything under `dir` with its contents, to show that a refused command changed
/// nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn keys_new_show_and_import_through_the_binary() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse\n")?;
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "battery staple\n")?;
    let home = dir.path().join("home");

    // new: both keystores and the proof of possession under HOME/keystore.
    let created = bttd_json(&[
        "keys",
        "new",
        "--home",
        path(&home),
        "--password-file",
        path(&pw),
        "--light-kdf",
        "--json",
    ])?;
    let keystore = home.join("keystore");
    for file in ["account.json", "bls.json", "bls.pop"] {
        ensure!(keystore.join(file).is_file(), "{file} not written");
    }
    let bls: Value = serde_json::from_str(&std::fs::read_to_string(keystore.join("bls.json"))?)?;
    ensure!(bls["version"] == 4 && bls["crypto"]["kdf"]["function"] == "scrypt");
    ensure!(format!("0x{}", bls["pubkey"].as_str().unwrap()) == created["blsPublicKey"]);
    let account: Value =
        serde_json::from_str(&std::fs::read_to_string(keystore.join("account.json"))?)?;
    ensure!(account["version"] == 3);

    // show: the same public parts without a password, and with the right one.
    let shown = bttd_json(&["keys", "show", "--home", path(&home), "--json"])?;
    ensure!(
        public_parts(&shown) == public_parts(&created),
        "{shown} != {created}"
    );
    let checked = bttd_json(&[
        "keys",
        "show",
        "--keystore-dir",
        path(&keystore),
        "--password-file",
        path(&pw),
        "--json",
    ])?;
    ensure!(public_parts(&checked) == public_parts(&created));
    let err = bttd_fails(&[
        "keys",
        "show",
        "--home",
        path(&home),
        "--password-file",
        path(&wrong),
    ])?;
    ensure!(err.contains("wrong password"), "{err}");
    // The text form names the same values.
    let text =
        String::from_utf8(bttd(&["keys", "show", "--home", path(&home)])?.stdout)?.to_lowercase();
    for field in ["address", "blsPublicKey", "proofOfPossession"] {
        let value = created[field].as_str().unwrap().to_lowercase();
        ensure!(text.contains(&value), "{field} {value} not in:\n{text}");
    }

    // new again over existing keys: refused, nothing changes.
    let before = snapshot(&keystore);
    let err = bttd_fails(&[
        "keys",
        "new",
        "--home",
        path(&home),
        "--password-file",
        path(&pw),
        "--light-kdf",
    ])?;
    ensure!(err.contains("already exists"), "{err}");
    ensure!(snapshot(&keystore) == before);

    // import from those keystores (re-encrypted under another password): same keys.
    let other = dir.path().join("other");
    let imported = bttd_json(&[
        "keys",
        "import",
        "--keystore-dir",
        path(&other),
        "--password-file",
        path(&wrong),
        "--source-password-file",
        path(&pw),
        "--account-keystore",
        path(&keystore.join("account.json")),
        "--bls-keystore",
        path(&keystore.join("bls.json")),
        "--light-kdf",
        "--json",
    ])?;
    ensure!(public_parts(&imported) == public_parts(&created));
    let reopened = bttd_json(&[
        "keys",
        "show",
        "--keystore-dir",
        path(&other),
        "--password-file",
        path(&wrong),
        "--json",
    ])?;
    ensure!(public_parts(&reopened) == public_parts(&created));

    // import from a keystore with the wrong source password: refused, nothing written.
    let refused = dir.path().join("refused");
    let err = bttd_fails(&[
        "keys",
        "import",
        "--keystore-dir",
        path(&refused),
        "--password-file",
        path(&pw),
        "--source-password-file",
        path(&wrong),
        "--account-keystore",
        path(&keystore.join("account.json")),
        "--bls-key",
        EIP2335_SECRET,
    ])?;
    ensure!(err.contains("wrong password"), "{err}");
    ensure!(!refused.exists());

    // import raw keys: dev account 0 and the EIP-2335 vector's secret give known public keys.
    let raw = dir.path().join("raw");
    let imported = bttd_json(&[
        "keys",
        "import",
        "--keystore-dir",
        path(&raw),
        "--password-file",
        path(&pw),
        "--account-key",
        DEV_KEYS[0],
        "--bls-key",
        EIP2335_SECRET,
        "--light-kdf",
        "--json",
    ])?;
    ensure!(
        imported["address"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        "{imported}"
    );
    ensure!(imported["blsPublicKey"] == EIP2335_PUBKEY, "{imported}");

    // Bad input: no location, a short key, a key that is not a scalar.
    bttd_fails(&["keys", "new", "--password-file", path(&pw)])?;
    let err = bttd_fails(&[
        "keys",
        "import",
        "--keystore-dir",
        path(&refused),
        "--password-file",
        path(&pw),
        "--account-key",
        "0x1234",
        "--bls-key",
        EIP2335_SECRET,
    ])?;
    ensure!(err.contains("expected 32"), "{err}");
    let err = bttd_fails(&[
        "keys",
        "import",
        "--keystore-dir",
        path(&refused),
        "--password-file",
        path(&pw),
        "--account-key",
        DEV_KEYS[1],
        "--bls-key",
        &format!("0x{}", "ff".repeat(32)),
    ])?;
    ensure!(err.contains("BLS key"), "{err}");
    ensure!(!refused.exists());
    Ok(())
}

/// A `bttd node --home` child, killed on drop; its log goes to a file printed on failure.
struct HomeNode {
    child: Child,
    log: std::path::PathBuf,
}

impl HomeNode {
    fn start(home: &Path) -> Result<Self> {
        let log = home.join("bttd.log");
        let child = Command::new(BTTD)
            .args(["node", "--home", path(home), "--log", "info"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { child, log })
    }

    /// Waits for the "RPC URL:" line on stdout.
    fn rpc_url(&mut self) -> Result<String> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| eyre!("stdout taken"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("RPC URL: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| eyre!("no RPC URL printed:\n{}", self.log_text()))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HomeNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.log_text());
        }
    }
}

fn rpc(url: &str, method: &str, params: Value) -> Result<Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .post(url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
        {
            Ok(response) => {
                let body: Value = response.json()?;
                return body
                    .get("result")
                    .cloned()
                    .ok_or_else(|| eyre!("{method}: {body}"));
            }
            Err(e) if Instant::now() > deadline => bail!("{method} at {url}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn testnet_init_writes_homes_that_start_with_node_home() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("net");
    let rpc_port = crate::support::free_port_range(5);
    let p2p_port = crate::support::free_port_range(5);
    let layout = bttd_json(&[
        "testnet",
        "init",
        "--validators",
        "4",
        "--full-nodes",
        "1",
        "--out",
        path(&out),
        "--rpc-port",
        &rpc_port.to_string(),
        "--p2p-port",
        &p2p_port.to_string(),
        "--chain-id",
        "4243",
        "--accounts",
        "2",
        "--block-time",
        "200ms",
        "--json",
    ])?;
    let nodes = layout["nodes"].as_array().unwrap();
    ensure!(nodes.len() == 5);

    // The genesis passes the validator checks; its set is the four homes' keys.
    let spec = ChainSpec::load(&out.join("genesis.json"))?;
    let set = spec.validator_set()?;
    ensure!(set.len() == 4);
    ensure!(layout["genesisHash"] == json!(spec.genesis_hash()?));
    for (i, node) in nodes.iter().enumerate() {
        let home = out.join(node["name"].as_str().unwrap());
        let mut config = NodeConfig::load(&home.join("config.toml"))?;
        config.resolve_paths(&home);
        ensure!(config.rpc.port == rpc_port + i as u16);
        ensure!(config.p2p.port == p2p_port + i as u16);
        // The peer id announced is the one of the key file in the home.
        let peer_id = bttd_network::peer_id_from_key_file(&home.join("data/p2p.key"))?;
        ensure!(node["peerId"] == peer_id.to_string());
        // Bootnodes: the other validators, with the peer ids of their key files.
        let others: Vec<Value> = nodes[..4]
            .iter()
            .filter(|n| n["name"] != node["name"])
            .map(|n| n["multiaddr"].clone())
            .collect();
        ensure!(
            json!(config.p2p.bootnodes) == json!(others),
            "node {i} bootnodes"
        );
        if i < 4 {
            let shown = bttd_json(&["keys", "show", "--home", path(&home), "--json"])?;
            ensure!(shown["address"] == node["validator"]["address"]);
            let key: bttd_consensus::bls::PublicKeyBytes =
                serde_json::from_value(shown["blsPublicKey"].clone())?;
            ensure!(
                set.index_of(&key) == Some(i as u32),
                "validator {i} not at its index"
            );
            ensure!(config.validator.is_some());
        } else {
            ensure!(node["validator"].is_null() && config.validator.is_none());
        }
    }

    // A second init into the same directory is refused.
    let err = bttd_fails(&["testnet", "init", "--validators", "1", "--out", path(&out)])?;
    ensure!(err.contains("not empty"), "{err}");

    // `bttd node --home` runs validator 0 and the full node from their homes.
    let mut validator = HomeNode::start(&out.join("node0"))?;
    let url = validator.rpc_url()?;
    ensure!(url.ends_with(&format!(":{rpc_port}")), "{url}");
    ensure!(rpc(&url, "eth_chainId", json!([]))? == "0x1093");
    let block0 = rpc(&url, "eth_getBlockByNumber", json!(["0x0", false]))?;
    ensure!(block0["hash"] == json!(spec.genesis_hash()?));
    ensure!(out.join("node0/data").is_dir(), "datadir is not HOME/data");
    let log = validator.log_text();
    ensure!(
        log.contains("validator 0"),
        "validator index not logged:\n{log}"
    );

    let mut full = HomeNode::start(&out.join("full0"))?;
    let url = full.rpc_url()?;
    ensure!(url.ends_with(&format!(":{}", rpc_port + 4)), "{url}");
    ensure!(rpc(&url, "eth_chainId", json!([]))? == "0x1093");
    Ok(())
}
