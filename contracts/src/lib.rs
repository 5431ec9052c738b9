//! Solidity contracts of bttd: compiled artifacts (committed, embedded here), alloy `sol!`
//! bindings, and the EIP-2935 block-hash history system contract.
//!
//! Sources live in `contracts/src/*.sol` and are compiled by `contracts/scripts/compile.mjs`
//! with a pinned solc-js (see `docs/contracts.md`) into `contracts/artifacts/<Name>.json`.
//! A unit test re-runs the compiler in `--check` mode so stale artifacts fail the test suite.

use std::sync::LazyLock;

pub mod channels;

use alloy_primitives::Bytes;
use serde::Deserialize;

/// The EIP-2935 block-hash history system contract (final Prague version).
///
/// Re-exported from `alloy-eips` so every bttd crate and alloy agree byte for byte; a test
/// below pins the values to the EIP text.
pub mod eip2935 {
    pub use alloy_eips::eip2935::{
        HISTORY_SERVE_WINDOW, HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE,
    };
}
pub use eip2935::{HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE};

/// A compiled contract: its ABI (JSON text), creation bytecode and deployed (runtime) bytecode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Contract name (also the artifact file stem).
    pub name: String,
    /// The ABI as a JSON array, exactly as solc produced it.
    pub abi_json: String,
    /// Creation (init) code; append ABI-encoded constructor arguments to deploy.
    pub bytecode: Bytes,
    /// Runtime code as it sits in state after deployment.
    pub deployed: Bytes,
    /// Full solc version string that produced the artifact.
    pub solc_version: String,
    /// `evmVersion` the artifact was compiled for.
    pub evm_version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArtifact {
    contract_name: String,
    abi: serde_json::Value,
    bytecode: Bytes,
    deployed_bytecode: Bytes,
    solc_version: String,
    evm_version: String,
}

impl Artifact {
    /// Parses an artifact written by `contracts/scripts/compile.mjs`.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let raw: RawArtifact = serde_json::from_str(json)?;
        Ok(Self {
            name: raw.contract_name,
            abi_json: raw.abi.to_string(),
            bytecode: raw.bytecode,
            deployed: raw.deployed_bytecode,
            solc_version: raw.solc_version,
            evm_version: raw.evm_version,
        })
    }
}

/// Raw JSON text of `artifacts/TestToken.json`.
pub const TEST_TOKEN_JSON: &str = include_str!("../artifacts/TestToken.json");

/// The TestToken ERC-20 used by end-to-end tests (constructor: `(string name, string symbol,
/// uint256 initialSupply)`, mints the supply to the deployer).
pub fn test_token() -> &'static Artifact {
    static A: LazyLock<Artifact> = LazyLock::new(|| {
        Artifact::from_json(TEST_TOKEN_JSON).expect("embedded TestToken artifact is valid")
    });
    &A
}

/// Raw JSON text of `artifacts/Multicall3.json`.
pub const MULTICALL3_JSON: &str = include_str!("../artifacts/Multicall3.json");

/// Where viem, ethers and wagmi look for Multicall3 (the same address on most chains).
pub const MULTICALL3_ADDRESS: alloy_primitives::Address =
    alloy_primitives::address!("cA11bde05977b3631167028862bE2a173976CA11");

/// bttd's Multicall3 (`src/Multicall3.sol`, the well-known Multicall3 ABI), predeployed at
/// [`MULTICALL3_ADDRESS`] on the devnet.
pub fn multicall3() -> &'static Artifact {
    static A: LazyLock<Artifact> = LazyLock::new(|| {
        Artifact::from_json(MULTICALL3_JSON).expect("embedded Multicall3 artifact is valid")
    });
    &A
}

/// Raw JSON text of `artifacts/BandwidthChannels.json`.
pub const BANDWIDTH_CHANNELS_JSON: &str = include_str!("../artifacts/BandwidthChannels.json");

/// Where every bttd genesis places `BandwidthChannels` (a system contract).
pub const BANDWIDTH_CHANNELS_ADDRESS: alloy_primitives::Address =
    alloy_primitives::address!("0000000000000000000000000000000000001002");

/// The bandwidth payment channels system contract (`src/BandwidthChannels.sol`, see
/// `docs/payment-channels.md`). Constructor: `(uint64 minSettleWindow, uint64
/// maxSettleWindow)`; genesis runs it at [`BANDWIDTH_CHANNELS_ADDRESS`].
pub fn bandwidth_channels() -> &'static Artifact {
    static A: LazyLock<Artifact> = LazyLock::new(|| {
        Artifact::from_json(BANDWIDTH_CHANNELS_JSON)
            .expect("embedded BandwidthChannels artifact is valid")
    });
    &A
}

/// Raw JSON text of `artifacts/StakeManager.json`.
pub const STAKE_MANAGER_JSON: &str = include_str!("../artifacts/StakeManager.json");

/// Where every bttd genesis places `StakeManager` (BTTC's validator-set address, which also
/// receives the base fees).
pub const STAKE_MANAGER_ADDRESS: alloy_primitives::Address =
    alloy_primitives::address!("0000000000000000000000000000000000001000");

/// The staking system contract (`src/StakeManager.sol`, see `docs/staking.md`). Constructor:
/// `(Params, address[] owners, address[] signers, bytes[] blsKeys, uint256[] stakes)` with a
/// value equal to the sum of the stakes; genesis runs it at [`STAKE_MANAGER_ADDRESS`].
pub fn stake_manager() -> &'static Artifact {
    static A: LazyLock<Artifact> = LazyLock::new(|| {
        Artifact::from_json(STAKE_MANAGER_JSON).expect("embedded StakeManager artifact is valid")
    });
    &A
}

/// Every embedded artifact, by contract name.
pub fn all() -> [&'static Artifact; 4] {
    [
        bandwidth_channels(),
        multicall3(),
        stake_manager(),
        test_token(),
    ]
}

/// Looks up an embedded artifact by contract name.
pub fn by_name(name: &str) -> Option<&'static Artifact> {
    all().into_iter().find(|a| a.name == name)
}

/// alloy bindings generated from the committed ABI (calls, events, errors, constructor).
/// `X::BYTECODE` / `X::DEPLOYED_BYTECODE` come from the same artifact.
pub mod bindings {
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        TestToken,
        "artifacts/TestToken.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        Multicall3,
        "artifacts/Multicall3.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        BandwidthChannels,
        "artifacts/BandwidthChannels.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        StakeManager,
        "artifacts/StakeManager.json"
    );
}
pub use bindings::{BandwidthChannels, Multicall3, StakeManager, TestToken};

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{U256, address, hex};
    use alloy_sol_types::{SolCall, SolConstructor, SolError, SolEvent};
    use std::path::Path;
    use std::process::Command;

    /// Stale artifacts fail the suite: recompile in memory and compare with what is committed.
    #[test]
    fn artifacts_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        if !dir.join("node_modules").join("solc").exists() {
            assert!(
                !ci,
                "CI is set but contracts/node_modules is missing: run `npm ci --prefix contracts` before the tests"
            );
            eprintln!(
                "SKIPPED artifacts_are_up_to_date: contracts/node_modules missing \
                 (run `npm ci --prefix contracts`; this skip becomes a failure under CI=true)"
            );
            return;
        }
        let out = Command::new("node")
            .arg("scripts/compile.mjs")
            .arg("--check")
            .current_dir(dir)
            .output()
            .expect("failed to run `node` (is Node.js >= 20 installed?)");
        assert!(
            out.status.success(),
            "contract artifacts are stale; run `node contracts/scripts/compile.mjs`\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn test_token_artifact_loads_and_matches_bindings() {
        let a = test_token();
        assert_eq!(a.name, "TestToken");
        assert!(a.solc_version.starts_with("0.8."), "{}", a.solc_version);
        assert!(!a.bytecode.is_empty() && !a.deployed.is_empty());
        // The creation code embeds the runtime code.
        assert!(
            a.bytecode
                .windows(a.deployed.len())
                .any(|w| w == &a.deployed[..])
        );
        assert_eq!(TestToken::BYTECODE, a.bytecode);
        assert_eq!(TestToken::DEPLOYED_BYTECODE, a.deployed);
        assert!(a.abi_json.starts_with('['));
        assert_eq!(by_name("TestToken"), Some(a));
        assert_eq!(by_name("Nope"), None);
    }

    #[test]
    fn bindings_have_the_expected_selectors() {
        assert_eq!(TestToken::transferCall::SELECTOR, hex!("a9059cbb"));
        assert_eq!(TestToken::approveCall::SELECTOR, hex!("095ea7b3"));
        assert_eq!(TestToken::transferFromCall::SELECTOR, hex!("23b872dd"));
        assert_eq!(TestToken::balanceOfCall::SELECTOR, hex!("70a08231"));
        assert_eq!(
            TestToken::Transfer::SIGNATURE_HASH,
            alloy_primitives::b256!(
                "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
            )
        );
        assert_eq!(
            TestToken::InsufficientAllowance::SIGNATURE,
            "InsufficientAllowance(address,uint256,uint256)"
        );
        let ctor = TestToken::constructorCall {
            name_: "T".into(),
            symbol_: "T".into(),
            initialSupply: U256::from(1),
        };
        assert_eq!(ctor.abi_encode().len(), 32 * 7);
    }

    /// The ABI is the well-known Multicall3's: the canonical selectors, and nothing else.
    #[test]
    fn multicall3_has_the_canonical_abi() {
        use Multicall3::*;
        let selectors = [
            (aggregateCall::SELECTOR, hex!("252dba42")),
            (aggregate3Call::SELECTOR, hex!("82ad56cb")),
            (aggregate3ValueCall::SELECTOR, hex!("174dea71")),
            (blockAndAggregateCall::SELECTOR, hex!("c3077fa9")),
            (getBasefeeCall::SELECTOR, hex!("3e64a696")),
            (getBlockHashCall::SELECTOR, hex!("ee82ac5e")),
            (getBlockNumberCall::SELECTOR, hex!("42cbb15c")),
            (getChainIdCall::SELECTOR, hex!("3408e470")),
            (getCurrentBlockCoinbaseCall::SELECTOR, hex!("a8b0574e")),
            (getCurrentBlockDifficultyCall::SELECTOR, hex!("72425d9d")),
            (getCurrentBlockGasLimitCall::SELECTOR, hex!("86d516e8")),
            (getCurrentBlockTimestampCall::SELECTOR, hex!("0f28c97d")),
            (getEthBalanceCall::SELECTOR, hex!("4d2301cc")),
            (getLastBlockHashCall::SELECTOR, hex!("27e86d6e")),
            (tryAggregateCall::SELECTOR, hex!("bce38bd7")),
            (tryBlockAndAggregateCall::SELECTOR, hex!("399542e9")),
        ];
        for (ours, canonical) in selectors {
            assert_eq!(ours, canonical);
        }
        let abi: serde_json::Value = serde_json::from_str(&multicall3().abi_json).unwrap();
        assert_eq!(
            abi.as_array().unwrap().len(),
            selectors.len(),
            "no extra ABI entries"
        );
        assert_eq!(Multicall3::DEPLOYED_BYTECODE, multicall3().deployed);
        assert_eq!(by_name("Multicall3"), Some(multicall3()));
    }

    #[test]
    fn eip2935_matches_the_eip_text() {
        // EIP-2935 (final, Prague): address and runtime code, copied from the EIP.
        assert_eq!(
            HISTORY_STORAGE_ADDRESS,
            address!("0x0000F90827F1C53a10cb7A02335B175320002935")
        );
        assert_eq!(
            HISTORY_STORAGE_CODE[..],
            hex!(
                "3373fffffffffffffffffffffffffffffffffffffffe14604657602036036042575f35600143038111604257611fff81430311604257611fff9006545f5260205ff35b5f5ffd5b5f35611fff60014303065500"
            )
        );
        assert_eq!(eip2935::HISTORY_SERVE_WINDOW, 8191);
    }
}
