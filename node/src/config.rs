//! Node configuration: a TOML file (`--config node.toml`) in which every command-line flag
//! has a key of the same name; flags override the file, the file overrides the defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use alloy_primitives::B256;
use bttd_network::{Multiaddr, NetworkConfig, P2pError, load_or_create_keypair, parse_bootnode};
use bttd_rpc::Api;
use bttd_txpool::PoolConfig;
use libp2p::multiaddr::Protocol;

pub use bttd_keys::ValidatorSection;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid duration {value:?} for {key}: {reason}")]
    Duration {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{old} was replaced by {new}")]
    Replaced {
        old: &'static str,
        new: &'static str,
    },
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("missing {0}: give it as a flag or in the config file")]
    Missing(&'static str),
}

/// A key (or section) of an earlier version: parsed whatever its value, only so that
/// [`NodeConfig::load`] can refuse it with the name that replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacedKey;

impl<'de> Deserialize<'de> for ReplacedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| ReplacedKey)
    }
}

/// Database memory budget of each `bttd devnet` validator in MiB. A devnet is a throwaway local
/// chain whose state is a few accounts, and up to several validators share one process: a node's
/// default (512 MiB each) would let a 4-validator devnet hold 2 GiB of cache for a working set of
/// megabytes, and keep growing toward it for as long as a test suite runs.
pub const DEVNET_CACHE_MB: usize = 64;

/// The `[storage]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageSection {
    /// Memory budget of the database in MiB: block cache and memtables together (geth's
    /// `--cache`). More keeps more of the state trie in memory.
    pub cache_mb: usize,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            cache_mb: bttd_runtime::storage::DEFAULT_CACHE_BYTES >> 20,
        }
    }
}

impl StorageSection {
    /// The budget in bytes; at least 16 MiB, below which RocksDB would flush on every block.
    pub fn cache_bytes(&self) -> Result<usize, ConfigError> {
        if self.cache_mb < 16 {
            return Err(ConfigError::Invalid {
                key: "storage.cache-mb",
                reason: format!("{} MiB is below the minimum of 16", self.cache_mb),
            });
        }
        self.cache_mb
            .checked_mul(1 << 20)
            .ok_or_else(|| ConfigError::Invalid {
                key: "storage.cache-mb",
                reason: format!("{} MiB does not fit in memory", self.cache_mb),
            })
    }
}

/// The `[rpc]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RpcSection {
    pub addr: IpAddr,
    pub port: u16,
    pub max_body_bytes: u32,
    /// Most requests in one batch (geth's `--rpc.batch-request-limit`).
    pub batch_request_limit: u32,
    /// Replaced by `batch-request-limit`; present only to refuse it with the new name.
    #[serde(skip_serializing)]
    pub max_batch: Option<ReplacedKey>,
    /// Largest response, a batch's included (geth's `--rpc.batch-response-max-size`).
    pub batch_response_max_size: u32,
    /// How long one eth_call or eth_estimateGas may run (geth's `--rpc.evmtimeout`).
    pub evm_timeout: String,
    /// Most polling filters installed at once.
    pub max_filters: usize,
    /// Threads for heavy requests (eth_call, eth_estimateGas, eth_getLogs, traces, channel
    /// lists), apart from the node's own work; unset means one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_heavy: Option<usize>,
    /// Most subscriptions on one WebSocket connection.
    pub max_subscriptions_per_connection: u32,
    pub max_connections: u32,
    pub max_log_range: u64,
    pub gas_cap: u64,
    /// Namespaces served: eth, net, web3, bor, bttd, channel, txpool (the default), debug,
    /// dev (signing for `--dev-accounts`, which implies it).
    pub api: Vec<Api>,
}

impl Default for RpcSection {
    fn default() -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8545,
            max_body_bytes: 5 * 1024 * 1024,
            batch_request_limit: 1000,
            max_batch: None,
            batch_response_max_size: 25_000_000,
            evm_timeout: "5s".into(),
            max_filters: 1024,
            max_concurrent_heavy: None,
            max_subscriptions_per_connection: 1024,
            max_connections: 100,
            max_log_range: 10_000,
            gas_cap: 50_000_000,
            api: Api::DEFAULT.to_vec(),
        }
    }
}

/// The `[txpool]` section: geth's legacy-pool limits, under geth's names without the
/// `txpool.` prefix (`--txpool.accountslots` is `account-slots`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TxpoolSection {
    /// Executable transactions an account is always allowed (more while the pool has room).
    pub account_slots: usize,
    /// Executable transactions in all before the accounts above `account-slots` are trimmed.
    pub global_slots: usize,
    /// Non-executable transactions per account.
    pub account_queue: usize,
    /// Non-executable transactions in all.
    pub global_queue: usize,
    /// Percentage a replacement must raise the fee cap and the tip by.
    pub price_bump: u128,
    /// How long an account's non-executable transactions are kept without its activity.
    pub lifetime: String,
}

impl Default for TxpoolSection {
    fn default() -> Self {
        let d = PoolConfig::default();
        Self {
            account_slots: d.account_slots,
            global_slots: d.global_slots,
            account_queue: d.account_queue,
            global_queue: d.global_queue,
            price_bump: d.price_bump,
            lifetime: humantime::format_duration(d.lifetime).to_string(),
        }
    }
}

impl TxpoolSection {
    pub fn pool_config(&self) -> Result<PoolConfig, ConfigError> {
        Ok(PoolConfig {
            account_slots: self.account_slots,
            global_slots: self.global_slots,
            account_queue: self.account_queue,
            global_queue: self.global_queue,
            price_bump: self.price_bump,
            lifetime: parse_duration("txpool.lifetime", &self.lifetime)?,
        })
    }
}

/// The `[p2p]` section: the libp2p network of validators and full nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct P2pSection {
    /// Listen address for TCP.
    pub addr: IpAddr,
    /// Listen port for TCP (0: any free port).
    pub port: u16,
    /// Peers to dial at start, as multiaddrs with a peer id
    /// (`/ip4/127.0.0.1/tcp/30303/p2p/12D3Koo...`).
    pub bootnodes: Vec<String>,
    /// File holding this node's libp2p identity (ed25519, created on first start);
    /// relative paths are relative to the datadir.
    pub key_file: PathBuf,
    /// Largest gossip or sync message accepted, in bytes (a full block must fit).
    pub max_message_bytes: usize,
    /// How long a peer that sent invalid data stays banned, e.g. "10m".
    pub ban_duration: String,
}

impl Default for P2pSection {
    fn default() -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 30303,
            bootnodes: Vec::new(),
            key_file: PathBuf::from("p2p.key"),
            max_message_bytes: 16 * 1024 * 1024,
            ban_duration: "10m".into(),
        }
    }
}

impl P2pSection {
    /// The network service's config from this section: the key file is read (or created)
    /// relative to `datadir`, the bootnodes must parse and name their peer id.
    pub fn network_config(
        &self,
        datadir: &Path,
        genesis_hash: B256,
    ) -> Result<NetworkConfig, P2pError> {
        let key_path = if self.key_file.is_absolute() {
            self.key_file.clone()
        } else {
            datadir.join(&self.key_file)
        };
        let keypair = load_or_create_keypair(&key_path)?;
        let listen = Multiaddr::from(self.addr).with(Protocol::Tcp(self.port));
        let bootnodes = self
            .bootnodes
            .iter()
            .map(|s| parse_bootnode(s).map(|(_, addr)| addr))
            .collect::<Result<Vec<_>, _>>()?;
        let ban_duration = parse_duration("p2p.ban-duration", &self.ban_duration)
            .map_err(|e| P2pError::Config(e.to_string()))?;
        let mut config = NetworkConfig::new(keypair, listen, genesis_hash);
        config.bootnodes = bootnodes;
        config.max_message_bytes = self.max_message_bytes;
        config.ban_duration = ban_duration;
        config.validate()?;
        Ok(config)
    }
}

/// Everything `bttd node` reads from node.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    pub datadir: Option<PathBuf>,
    pub genesis: Option<PathBuf>,
    /// Interval between blocks, e.g. "1s" or "250ms".
    pub block_time: Option<String>,
    /// Receives priority fees of produced blocks.
    pub coinbase: Option<Address>,
    /// Serve Prometheus metrics and /health here.
    pub metrics: Option<SocketAddr>,
    /// tracing filter, e.g. "info,bttd::rpc=debug".
    pub log: Option<String>,
    /// Serve the test mnemonic's accounts through eth_accounts / eth_sendTransaction / eth_sign*
    /// (as `bttd devnet` does). Never on a node whose RPC others can reach.
    pub dev_accounts: bool,
    /// Sign from the start, without first watching for another instance of this validator's
    /// key (docs/consensus.md, "Doppelganger protection"). Only for operators sure that no
    /// other instance runs.
    pub disable_doppelganger_protection: bool,
    pub rpc: RpcSection,
    pub txpool: TxpoolSection,
    pub storage: StorageSection,
    /// Replaced by `[txpool]`; present only to refuse it with the new names.
    #[serde(skip_serializing)]
    pub pool: Option<ReplacedKey>,
    pub p2p: P2pSection,
    /// Absent on a full node.
    pub validator: Option<ValidatorSection>,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        config.refuse_replaced_keys()?;
        Ok(config)
    }

    /// Keys of earlier versions, refused with the names that replaced them.
    pub fn refuse_replaced_keys(&self) -> Result<(), ConfigError> {
        if self.pool.is_some() {
            return Err(ConfigError::Replaced {
                old: "[pool] (max-per-sender, max-total, price-bump-percent)",
                new: "[txpool] with geth's limits: account-slots, global-slots, account-queue, \
                      global-queue, price-bump, lifetime",
            });
        }
        if self.rpc.max_batch.is_some() {
            return Err(ConfigError::Replaced {
                old: "rpc.max-batch",
                new: "rpc.batch-request-limit (geth's --rpc.batch-request-limit)",
            });
        }
        Ok(())
    }

    /// Makes the paths of a config read from node home `home` absolute: `datadir` (default
    /// `home/data`), `genesis` (default `home/genesis.json`) and the `[validator]` keystores and
    /// password file resolve against `home`. `p2p.key-file` and `validator.slashing-db` stay
    /// relative to the datadir, as documented on their keys.
    pub fn resolve_paths(&mut self, home: &Path) {
        let resolve = |path: &mut PathBuf| *path = home.join(&*path);
        resolve(self.datadir.get_or_insert_with(|| PathBuf::from("data")));
        resolve(
            self.genesis
                .get_or_insert_with(|| PathBuf::from("genesis.json")),
        );
        if let Some(validator) = &mut self.validator {
            resolve(&mut validator.bls_keystore);
            resolve(&mut validator.account_keystore);
            resolve(&mut validator.password_file);
        }
    }

    pub fn block_time(&self) -> Result<Duration, ConfigError> {
        let value = self.block_time.as_deref().unwrap_or("1s");
        parse_duration("block-time", value)
    }
}

pub fn parse_duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let duration = humantime::parse_duration(value).map_err(|e| ConfigError::Duration {
        key,
        value: value.to_string(),
        reason: e.to_string(),
    })?;
    if duration < Duration::from_millis(10) {
        return Err(ConfigError::Duration {
            key,
            value: value.to_string(),
            reason: "must be at least 10ms".into(),
        });
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bttd_network::Keypair;

    #[test]
    fn every_key_parses_and_unknown_keys_are_refused() {
        let text = r#"
            datadir = "/var/lib/bttd"
            genesis = "/etc/bttd/genesis.json"
            block-time = "500ms"
            coinbase = "0x0000000000000000000000000000000000000001"
            metrics = "127.0.0.1:9100"
            log = "debug"
            [rpc]
            addr = "0.0.0.0"
            port = 9545
            max-body-bytes = 1024
            batch-request-limit = 10
            api = ["eth", "debug"]
            max-connections = 5
            max-log-range = 100
            gas-cap = 1000000
            [txpool]
            account-slots = 32
            global-slots = 100
            account-queue = 8
            global-queue = 50
            price-bump = 12
            lifetime = "1h"
        "#;
        let config: NodeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.rpc.port, 9545);
        let pool = config.txpool.pool_config().unwrap();
        assert_eq!((pool.account_slots, pool.global_slots), (32, 100));
        assert_eq!((pool.account_queue, pool.global_queue), (8, 50));
        assert_eq!(
            (pool.price_bump, pool.lifetime),
            (12, Duration::from_secs(3600))
        );
        assert_eq!(config.rpc.batch_request_limit, 10);
        assert_eq!(config.rpc.api, vec![Api::Eth, Api::Debug]);
        assert!(toml::from_str::<NodeConfig>("[rpc]\napi = [\"admin\"]").is_err());
        assert_eq!(config.block_time().unwrap(), Duration::from_millis(500));
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<NodeConfig>("[rpc]\nbogus = 1").is_err());
    }

    /// Issue 11: `[pool]` and `rpc.max-batch` of earlier versions are refused with the names
    /// that replaced them, not silently ignored.
    #[test]
    fn replaced_keys_are_refused_with_their_new_names() {
        let old_pool: NodeConfig = toml::from_str("[pool]\nmax-per-sender = 16").unwrap();
        let message = old_pool.refuse_replaced_keys().unwrap_err().to_string();
        assert!(
            message.contains("[txpool]") && message.contains("account-slots"),
            "{message}"
        );
        let old_batch: NodeConfig = toml::from_str("[rpc]\nmax-batch = 10").unwrap();
        let message = old_batch.refuse_replaced_keys().unwrap_err().to_string();
        assert!(message.contains("batch-request-limit"), "{message}");
        assert!(NodeConfig::default().refuse_replaced_keys().is_ok());
    }

    #[test]
    fn paths_resolve_against_the_home() {
        let text = r#"
            genesis = "../genesis.json"
            [validator]
            bls-keystore = "keystore/bls.json"
            account-keystore = "/abs/account.json"
            password-file = "password.txt"
        "#;
        let mut config: NodeConfig = toml::from_str(text).unwrap();
        config.resolve_paths(Path::new("/net/node0"));
        assert_eq!(config.datadir, Some(PathBuf::from("/net/node0/data")));
        assert_eq!(
            config.genesis,
            Some(PathBuf::from("/net/node0/../genesis.json"))
        );
        let validator = config.validator.unwrap();
        assert_eq!(
            validator.bls_keystore,
            PathBuf::from("/net/node0/keystore/bls.json")
        );
        assert_eq!(
            validator.account_keystore,
            PathBuf::from("/abs/account.json")
        );
        assert_eq!(
            validator.password_file,
            PathBuf::from("/net/node0/password.txt")
        );
        assert_eq!(
            validator.slashing_db,
            PathBuf::from("slashing-protection.json")
        );
        let mut bare = NodeConfig {
            datadir: Some("/var/lib/bttd".into()),
            ..NodeConfig::default()
        };
        bare.resolve_paths(Path::new("home"));
        assert_eq!(bare.datadir, Some(PathBuf::from("/var/lib/bttd")));
        assert_eq!(bare.genesis, Some(PathBuf::from("home/genesis.json")));
    }

    #[test]
    fn silly_block_times_are_refused() {
        assert!(parse_duration("block-time", "1ms").is_err());
        assert!(parse_duration("block-time", "soon").is_err());
    }

    #[test]
    fn section_translates_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let mut section = P2pSection {
            port: 4001,
            bootnodes: vec![format!("/ip4/127.0.0.1/tcp/30303/p2p/{peer}")],
            ban_duration: "90s".into(),
            ..P2pSection::default()
        };
        let config = section.network_config(dir.path(), B256::ZERO).unwrap();
        assert_eq!(config.listen.to_string(), "/ip4/0.0.0.0/tcp/4001");
        assert_eq!(config.bootnodes.len(), 1);
        assert_eq!(config.ban_duration, Duration::from_secs(90));
        assert_eq!(config.max_message_bytes, 16 * 1024 * 1024);
        assert!(
            dir.path().join("p2p.key").exists(),
            "key file created in the datadir"
        );

        section.bootnodes = vec!["/ip4/127.0.0.1/tcp/30303".into()];
        assert!(matches!(
            section.network_config(dir.path(), B256::ZERO),
            Err(P2pError::Bootnode { .. })
        ));
        section.bootnodes = vec![format!("/p2p/{peer}")];
        assert!(section.network_config(dir.path(), B256::ZERO).is_err());
        section.bootnodes = vec!["not a multiaddr".into()];
        assert!(section.network_config(dir.path(), B256::ZERO).is_err());
        section.bootnodes.clear();
        section.ban_duration = "soon".into();
        assert!(matches!(
            section.network_config(dir.path(), B256::ZERO),
            Err(P2pError::Config(_))
        ));
        section.ban_duration = "10m".into();
        section.max_message_bytes = 10;
        assert!(matches!(
            section.network_config(dir.path(), B256::ZERO),
            Err(P2pError::Config(_))
        ));
        section.max_message_bytes = 1 << 20;
        section.key_file = PathBuf::from("/nonexistent-dir-for-bttd-test/\0");
        assert!(section.network_config(dir.path(), B256::ZERO).is_err());
    }
}
