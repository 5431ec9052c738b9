//! `bttd testnet init`: a genesis and one node home per validator (and per full node), ready
//! to start with `bttd node --home DIR/node{i}` on one machine.
//!
//! Every identity is made here, ahead of time, so the files can refer to each other: the
//! genesis lists every validator's BLS key, proof of possession and address; each node's libp2p
//! key file is written now, so its peer id, and with it every bootnode multiaddr in the other
//! nodes' configs, is known before anything starts. `bttd devnet --validators N` calls
//! [`init`] on a temporary directory.
//!
//! ```text
//! DIR/genesis.json
//! DIR/node{i}/config.toml      datadir "data", genesis "../genesis.json", ports base+i,
//!                              bootnodes: every other validator, [validator] keys
//! DIR/node{i}/password.txt     random, mode 0600
//! DIR/node{i}/keystore/        account.json (v3), bls.json (EIP-2335), bls.pop
//! DIR/node{i}/data/p2p.key     the libp2p identity (ed25519)
//! DIR/full{j}/...              the same without keys and [validator]; ports after the validators'
//! ```
//!
//! The keystores use a light scrypt ([`Kdf::LIGHT`], n = 2^12) because the password file lies
//! next to them: a strong KDF would protect nothing and make starting N nodes slow.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use alloy_genesis::GenesisAccount;
use alloy_primitives::U256;
use bttd_genesis::{
    BttdParams, ChainSpec, DevnetOptions, GenesisError, GenesisValidator, StakingParams,
    WEI_PER_BTT, devnet_genesis,
};

use crate::config::{
    ConfigError, NodeConfig, P2pSection, RpcSection, ValidatorSection, parse_duration,
};
use bttd_keys::{Kdf, KeyError, KeyInfo, KeystoreDir, ValidatorKeys};
use bttd_network::{Keypair, P2pError, PeerId};

/// Name of the genesis file in the output directory.
pub const GENESIS_FILE: &str = "genesis.json";
/// Name of the config file in a node home.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the password file in a validator's home.
pub const PASSWORD_FILE: &str = "password.txt";
/// Name of the keystore directory in a validator's home.
pub const KEYSTORE_DIR: &str = "keystore";
/// Name of the datadir in a node home.
pub const DATA_DIR: &str = "data";
/// Name of the libp2p key file in the datadir.
pub const P2P_KEY_FILE: &str = "p2p.key";

/// What `bttd testnet init` was asked for.
#[derive(Debug, Clone)]
pub struct TestnetOptions {
    pub out: PathBuf,
    pub validators: usize,
    pub full_nodes: usize,
    /// Node i serves JSON-RPC on `rpc_port + i` (full nodes after the validators).
    pub rpc_port: u16,
    /// Node i listens for libp2p on `p2p_port + i`.
    pub p2p_port: u16,
    /// Address every node binds RPC and P2P to, and bootnodes point at.
    pub addr: IpAddr,
    pub chain_id: u64,
    /// Funded dev accounts of the test mnemonic.
    pub accounts: u32,
    /// Balance of each dev account and each validator account, in whole BTT.
    pub balance_btt: u64,
    pub block_time: String,
    /// Voting power of each validator.
    pub power: u64,
    pub epoch_length: u64,
    /// `config.bttd.staking` of the genesis (StakeManager's constructor arguments).
    pub staking: StakingParams,
    pub kdf: Kdf,
}

impl Default for TestnetOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("testnet"),
            validators: 4,
            full_nodes: 0,
            rpc_port: 8545,
            p2p_port: 30303,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            chain_id: bttd_genesis::DEVNET_CHAIN_ID,
            accounts: 10,
            balance_btt: 1_000_000,
            block_time: "1s".into(),
            power: 100,
            epoch_length: BttdParams::default().epoch_length,
            staking: StakingParams::devnet(),
            kdf: Kdf::LIGHT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("invalid option: {0}")]
    Option(String),
    #[error("{path} exists and is not empty; give a new or empty --out directory")]
    OutNotEmpty { path: PathBuf },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    P2p(#[from] P2pError),
}

/// What [`init`] wrote.
#[derive(Debug, Clone)]
pub struct TestnetLayout {
    pub dir: PathBuf,
    pub genesis: PathBuf,
    pub spec: ChainSpec,
    /// Validators first (node0..), then full nodes (full0..).
    pub nodes: Vec<NodeHome>,
}

/// One node home.
#[derive(Debug, Clone)]
pub struct NodeHome {
    /// `node{i}` or `full{j}`.
    pub name: String,
    pub home: PathBuf,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub peer_id: PeerId,
    /// `/ip4/<addr>/tcp/<p2p port>/p2p/<peer id>`: what other nodes list as a bootnode.
    pub multiaddr: String,
    /// The validator's public keys; `None` on a full node.
    pub validator: Option<KeyInfo>,
}

impl NodeHome {
    pub fn config_path(&self) -> PathBuf {
        self.home.join(CONFIG_FILE)
    }

    pub fn rpc_url(&self, addr: IpAddr) -> String {
        format!("http://{}", std::net::SocketAddr::new(addr, self.rpc_port))
    }
}

/// Writes a testnet into `options.out` (which must be absent or empty). On failure whatever
/// was written is removed again.
pub fn init(options: &TestnetOptions) -> Result<TestnetLayout, TestnetError> {
    check(options)?;
    let out = &options.out;
    let existed = out.exists();
    if existed
        && std::fs::read_dir(out)
            .map_err(|source| io(out, source))?
            .next()
            .is_some()
    {
        return Err(TestnetError::OutNotEmpty { path: out.clone() });
    }
    std::fs::create_dir_all(out).map_err(|source| io(out, source))?;
    let result = write(options);
    if result.is_err() {
        if existed {
            if let Ok(entries) = std::fs::read_dir(out) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_dir_all(entry.path())
                        .or_else(|_| std::fs::remove_file(entry.path()));
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(out);
        }
    }
    result
}

fn check(options: &TestnetOptions) -> Result<(), TestnetError> {
    if options.validators == 0 {
        return Err(TestnetError::Option(
            "--validators must be at least 1".into(),
        ));
    }
    if options.power == 0 {
        return Err(TestnetError::Option(
            "validator power must be positive".into(),
        ));
    }
    let count = options.validators + options.full_nodes;
    for (what, base) in [("RPC", options.rpc_port), ("P2P", options.p2p_port)] {
        if base == 0 || usize::from(base) + count - 1 > usize::from(u16::MAX) {
            return Err(TestnetError::Option(format!(
                "{what} ports {base}..{base}+{} do not fit in 1..=65535",
                count - 1
            )));
        }
    }
    let (rpc, p2p) = (usize::from(options.rpc_port), usize::from(options.p2p_port));
    if rpc < p2p + count && p2p < rpc + count {
        return Err(TestnetError::Option(format!(
            "RPC ports {rpc}.. and P2P ports {p2p}.. overlap for {count} nodes"
        )));
    }
    parse_duration("block-time", &options.block_time)?;
    Ok(())
}

fn write(options: &TestnetOptions) -> Result<TestnetLayout, TestnetError> {
    let out = &options.out;
    let validators: Vec<ValidatorKeys> = (0..options.validators)
        .map(|_| ValidatorKeys::generate())
        .collect();
    let spec = genesis(options, &validators)?;
    let genesis_path = out.join(GENESIS_FILE);
    spec.write(&genesis_path)?;

    // Every home's identity first: the configs name each other's peer ids.
    let mut nodes = Vec::new();
    let mut keypairs = Vec::new();
    for i in 0..options.validators + options.full_nodes {
        let name = if i < options.validators {
            format!("node{i}")
        } else {
            format!("full{}", i - options.validators)
        };
        let keypair = Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let p2p_port = options.p2p_port + i as u16;
        nodes.push(NodeHome {
            home: out.join(&name),
            name,
            rpc_port: options.rpc_port + i as u16,
            p2p_port,
            multiaddr: multiaddr(options.addr, p2p_port, &peer_id),
            peer_id,
            validator: None,
        });
        keypairs.push(keypair);
    }
    let validator_addrs: Vec<String> = nodes[..options.validators]
        .iter()
        .map(|n| n.multiaddr.clone())
        .collect();

    for (i, (node, keypair)) in nodes.iter_mut().zip(&keypairs).enumerate() {
        let home = &node.home;
        bttd_network::write_key_file(&home.join(DATA_DIR).join(P2P_KEY_FILE), keypair)?;
        let validator = match validators.get(i) {
            Some(keys) => {
                let password = bttd_keys::random_password();
                bttd_keys::write_password_file(&home.join(PASSWORD_FILE), &password)?;
                let info = KeystoreDir::new(home.join(KEYSTORE_DIR)).create(
                    keys,
                    &password,
                    options.kdf,
                )?;
                node.validator = Some(info);
                Some(ValidatorSection {
                    bls_keystore: Path::new(KEYSTORE_DIR).join(bttd_keys::BLS_FILE),
                    account_keystore: Path::new(KEYSTORE_DIR).join(bttd_keys::ACCOUNT_FILE),
                    password_file: PASSWORD_FILE.into(),
                    slashing_db: "slashing-protection.json".into(),
                })
            }
            None => None,
        };
        let bootnodes = validator_addrs
            .iter()
            .filter(|addr| **addr != node.multiaddr)
            .cloned()
            .collect();
        let config = NodeConfig {
            datadir: Some(DATA_DIR.into()),
            genesis: Some(Path::new("..").join(GENESIS_FILE)),
            block_time: Some(options.block_time.clone()),
            rpc: RpcSection {
                addr: options.addr,
                port: node.rpc_port,
                ..RpcSection::default()
            },
            p2p: P2pSection {
                addr: options.addr,
                port: node.p2p_port,
                bootnodes,
                key_file: P2P_KEY_FILE.into(),
                ..P2pSection::default()
            },
            validator,
            ..NodeConfig::default()
        };
        let header = format!(
            "# {} of a {}-validator testnet, written by `bttd testnet init`.\n\
             # Start it with `bttd node --home {}`. Relative paths resolve against this\n\
             # directory; p2p.key-file and validator.slashing-db against the datadir.\n\n",
            node.name,
            options.validators,
            home.display()
        );
        let text = toml::to_string(&config).map_err(|e| TestnetError::Io {
            path: home.join(CONFIG_FILE),
            source: std::io::Error::other(e),
        })?;
        let path = home.join(CONFIG_FILE);
        std::fs::write(&path, header + &text).map_err(|source| io(&path, source))?;
    }
    Ok(TestnetLayout {
        dir: out.clone(),
        genesis: genesis_path,
        spec,
        nodes,
    })
}

/// The devnet genesis (dev accounts, predeploys) with these validators, each funded.
fn genesis(options: &TestnetOptions, keys: &[ValidatorKeys]) -> Result<ChainSpec, GenesisError> {
    let params = BttdParams {
        validators: keys
            .iter()
            .map(|k| {
                GenesisValidator::new(
                    k.address(),
                    k.bls_public_key(),
                    k.proof_of_possession(),
                    options.power,
                )
            })
            .collect(),
        epoch_length: options.epoch_length,
        staking: options.staking.clone(),
        ..BttdParams::default()
    };
    let (spec, _) = devnet_genesis(&DevnetOptions {
        chain_id: options.chain_id,
        accounts: options.accounts,
        balance_btt: options.balance_btt,
        params: params.clone(),
        ..DevnetOptions::default()
    })?;
    let mut genesis = spec.genesis;
    let balance = U256::from(options.balance_btt) * U256::from(WEI_PER_BTT);
    for k in keys {
        genesis.alloc.entry(k.address()).or_insert(GenesisAccount {
            balance,
            ..Default::default()
        });
    }
    ChainSpec::new(genesis, params)
}

fn multiaddr(addr: IpAddr, port: u16, peer_id: &PeerId) -> String {
    let proto = if addr.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{addr}/tcp/{port}/p2p/{peer_id}")
}

fn io(path: &Path, source: std::io::Error) -> TestnetError {
    TestnetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bttd_keys::load_validator_keys;

    fn options(out: &Path, validators: usize, full_nodes: usize) -> TestnetOptions {
        TestnetOptions {
            out: out.to_path_buf(),
            validators,
            full_nodes,
            rpc_port: 18545,
            p2p_port: 40303,
            accounts: 2,
            ..TestnetOptions::default()
        }
    }

    #[test]
    fn four_validators_and_a_full_node() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        let layout = init(&options(&out, 4, 1)).unwrap();
        assert_eq!(layout.nodes.len(), 5);

        // The genesis on disk passes the validator checks and names every validator's keys.
        let spec = ChainSpec::load(&out.join(GENESIS_FILE)).unwrap();
        let set = spec.validator_set().unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.total_power(), 400);
        for (i, node) in layout.nodes.iter().enumerate() {
            let mut config = NodeConfig::load(&node.config_path()).unwrap();
            config.resolve_paths(&node.home);
            assert_eq!(config.rpc.port, 18545 + i as u16);
            assert_eq!(config.p2p.port, 40303 + i as u16);
            assert_eq!(
                config.datadir.as_deref(),
                Some(node.home.join("data").as_path())
            );
            assert_eq!(
                ChainSpec::load(config.genesis.as_ref().unwrap())
                    .unwrap()
                    .genesis_hash()
                    .unwrap(),
                spec.genesis_hash().unwrap()
            );
            // The key file holds the peer id the layout (and the other configs) announce.
            let key_file = node.home.join("data").join(P2P_KEY_FILE);
            assert_eq!(
                bttd_network::peer_id_from_key_file(&key_file).unwrap(),
                node.peer_id
            );
            // Bootnodes: every validator but itself, each with the peer id of its key file.
            let expected: Vec<_> = layout.nodes[..4]
                .iter()
                .filter(|n| n.name != node.name)
                .map(|n| n.multiaddr.clone())
                .collect();
            assert_eq!(config.p2p.bootnodes, expected);
            for bootnode in &config.p2p.bootnodes {
                let (peer, _) = bttd_network::parse_bootnode(bootnode).unwrap();
                let owner = layout.nodes.iter().find(|n| n.peer_id == peer).unwrap();
                let owner_key = owner.home.join("data").join(P2P_KEY_FILE);
                assert_eq!(
                    bttd_network::peer_id_from_key_file(&owner_key).unwrap(),
                    peer
                );
                assert!(bootnode.contains(&format!("/tcp/{}/", owner.p2p_port)));
            }
            match &config.validator {
                Some(section) => {
                    assert!(i < 4);
                    let keys = load_validator_keys(section, &node.home).unwrap();
                    assert_eq!(set.index_of(&keys.bls_public_key()), Some(i as u32));
                    assert_eq!(set.validators()[i].address, keys.address());
                    // Validator accounts are funded.
                    assert!(spec.genesis.alloc[&keys.address()].balance > U256::ZERO);
                }
                None => assert_eq!(node.name, "full0"),
            }
        }
    }

    #[test]
    fn bad_options_and_a_used_directory_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        let refused = |o: TestnetOptions| {
            assert!(init(&o).is_err());
            assert!(!out.exists());
        };
        refused(options(&out, 0, 0));
        refused(TestnetOptions {
            rpc_port: 65534,
            ..options(&out, 4, 0)
        });
        refused(TestnetOptions {
            p2p_port: 18547,
            ..options(&out, 4, 0)
        });
        refused(TestnetOptions {
            block_time: "soon".into(),
            ..options(&out, 1, 0)
        });
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("keep"), "x").unwrap();
        assert!(matches!(
            init(&options(&out, 1, 0)),
            Err(TestnetError::OutNotEmpty { .. })
        ));
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    }
}
