//! The test methods of anvil and Hardhat (issue 15; docs/devnet.md): mining control
//! (evm_mine, anvil_mine, evm_setAutomine, evm_setIntervalMining), state cheats
//! (anvil_setBalance, anvil_setCode, anvil_setNonce, anvil_setStorageAt), time
//! (evm_increaseTime, evm_setNextBlockTimestamp), anvil_setNextBlockBaseFeePerGas,
//! impersonation, anvil_dropTransaction, evm_snapshot / evm_revert, anvil_reset and
//! anvil_nodeInfo, each also under its `hardhat_*` name where Hardhat has one.
//!
//! Why it looks like this:
//! - **Only on a single-producer devnet.** The methods are served when the node context holds
//!   a [`DevnetControl`] (`bttd devnet` without `--validators`). Everywhere else each name is
//!   registered by [`refusing_module`] and answers -32000 saying so, so a test suite pointed
//!   at the wrong node fails with a clear message instead of "method not found".
//! - **Every state change is a block.** A cheat mines one block at once that carries it (see
//!   `bttd_runtime::cheats`); headers, receipts roots and eth_getProof stay verifiable.
//! - **Hostile input.** Quantities arrive as hex strings or JSON numbers ([`Quantity`]) and are
//!   range-checked; nothing here panics on what a client sends.

use std::sync::Arc;

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_eth::TransactionRequest;
use bttd_runtime::RecoveredTx;
use bttd_runtime::cheats::AccountOverride;
use bttd_runtime::tx::impersonation_signature;
use bttd_txpool::devnet::{DevnetControl, DevnetError, MineRequest, MiningMode};
use jsonrpsee::RpcModule;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::Rpc;
use super::error::{RpcResult, internal, invalid_params, server_error};

/// A quantity as clients send it: a hex string (`"0x10"`), a decimal string, or a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity(pub U256);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(deserializer)? {
            Value::Number(n) => n
                .as_u64()
                .map(|n| Quantity(U256::from(n)))
                .ok_or_else(|| D::Error::custom("expected a non-negative integer")),
            Value::String(s) => {
                let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) if !hex.is_empty() => U256::from_str_radix(hex, 16),
                    Some(_) => return Err(D::Error::custom("empty hex quantity")),
                    None => U256::from_str_radix(&s, 10),
                };
                parsed
                    .map(Quantity)
                    .map_err(|e| D::Error::custom(format!("invalid quantity {s:?}: {e}")))
            }
            other => Err(D::Error::custom(format!(
                "expected a quantity, got {other}"
            ))),
        }
    }
}

impl Quantity {
    fn u64(self, what: &str) -> RpcResult<u64> {
        u64::try_from(self.0).map_err(|_| invalid_params(format!("{what} does not fit in 64 bits")))
    }
}

#[rpc(server)]
pub(crate) trait AnvilApi {
    #[method(name = "evm_setAutomine", blocking)]
    fn set_automine(&self, enabled: bool) -> RpcResult<()>;

    #[method(name = "anvil_getAutomine", aliases = ["hardhat_getAutomine"])]
    fn get_automine(&self) -> RpcResult<bool>;

    /// Seconds between blocks; 0 turns interval mining off.
    #[method(name = "evm_setIntervalMining")]
    fn set_interval_mining(&self, seconds: Quantity) -> RpcResult<()>;

    /// One block, with the given timestamp if any (a number, or anvil's `{timestamp, blocks}`).
    #[method(name = "evm_mine", blocking)]
    fn evm_mine(&self, options: Option<Value>) -> RpcResult<String>;

    /// `count` blocks (default 1), `interval` seconds apart.
    #[method(name = "anvil_mine", aliases = ["hardhat_mine"], blocking)]
    fn anvil_mine(&self, count: Option<Quantity>, interval: Option<Quantity>) -> RpcResult<()>;

    #[method(name = "anvil_setBalance", aliases = ["hardhat_setBalance"], blocking)]
    fn set_balance(&self, address: Address, balance: Quantity) -> RpcResult<()>;

    #[method(name = "anvil_setCode", aliases = ["hardhat_setCode"], blocking)]
    fn set_code(&self, address: Address, code: Bytes) -> RpcResult<()>;

    #[method(name = "anvil_setNonce", aliases = ["hardhat_setNonce"], blocking)]
    fn set_nonce(&self, address: Address, nonce: Quantity) -> RpcResult<()>;

    #[method(name = "anvil_setStorageAt", aliases = ["hardhat_setStorageAt"], blocking)]
    fn set_storage_at(&self, address: Address, slot: Quantity, value: Quantity) -> RpcResult<bool>;

    #[method(name = "anvil_impersonateAccount", aliases = ["hardhat_impersonateAccount"])]
    fn impersonate_account(&self, address: Address) -> RpcResult<()>;

    #[method(
        name = "anvil_stopImpersonatingAccount",
        aliases = ["hardhat_stopImpersonatingAccount"]
    )]
    fn stop_impersonating_account(&self, address: Address) -> RpcResult<()>;

    /// eth_sendTransaction from an impersonated account (placeholder signature).
    #[method(name = "eth_sendUnsignedTransaction", blocking)]
    fn send_unsigned_transaction(&self, request: TransactionRequest) -> RpcResult<B256>;

    /// Removes a pool transaction (and its sender's later nonces); its hash if it was there.
    #[method(name = "anvil_dropTransaction", aliases = ["hardhat_dropTransaction"])]
    fn drop_transaction(&self, hash: B256) -> RpcResult<Option<B256>>;

    #[method(name = "evm_snapshot", blocking)]
    fn snapshot(&self) -> RpcResult<U256>;

    #[method(name = "evm_revert", blocking)]
    fn revert(&self, id: Quantity) -> RpcResult<bool>;

    /// Moves the clock of later blocks forward; returns the total offset in seconds.
    #[method(name = "evm_increaseTime")]
    fn increase_time(&self, seconds: Quantity) -> RpcResult<U256>;

    #[method(name = "evm_setNextBlockTimestamp")]
    fn set_next_block_timestamp(&self, timestamp: Quantity) -> RpcResult<()>;

    #[method(
        name = "anvil_setNextBlockBaseFeePerGas",
        aliases = ["hardhat_setNextBlockBaseFeePerGas"]
    )]
    fn set_next_block_base_fee_per_gas(&self, base_fee: Quantity) -> RpcResult<()>;

    /// Back to genesis. Forking is refused.
    #[method(name = "anvil_reset", aliases = ["hardhat_reset"], blocking)]
    fn reset(&self, options: Option<Value>) -> RpcResult<()>;

    #[method(name = "anvil_nodeInfo")]
    fn node_info(&self) -> RpcResult<Value>;
}

/// The longest mining interval (a year): a timer much further out has no use and would
/// overflow the clock.
const MAX_INTERVAL_SECONDS: u64 = 365 * 24 * 3600;

/// Every name [`AnvilApiServer`] registers, aliases included (a test keeps them equal).
pub(crate) const METHODS: &[&str] = &[
    "evm_setAutomine",
    "anvil_getAutomine",
    "hardhat_getAutomine",
    "evm_setIntervalMining",
    "evm_mine",
    "anvil_mine",
    "hardhat_mine",
    "anvil_setBalance",
    "hardhat_setBalance",
    "anvil_setCode",
    "hardhat_setCode",
    "anvil_setNonce",
    "hardhat_setNonce",
    "anvil_setStorageAt",
    "hardhat_setStorageAt",
    "anvil_impersonateAccount",
    "hardhat_impersonateAccount",
    "anvil_stopImpersonatingAccount",
    "hardhat_stopImpersonatingAccount",
    "eth_sendUnsignedTransaction",
    "anvil_dropTransaction",
    "hardhat_dropTransaction",
    "evm_snapshot",
    "evm_revert",
    "evm_increaseTime",
    "evm_setNextBlockTimestamp",
    "anvil_setNextBlockBaseFeePerGas",
    "hardhat_setNextBlockBaseFeePerGas",
    "anvil_reset",
    "hardhat_reset",
    "anvil_nodeInfo",
];

/// The message of the refusal on every node that is not a single-producer devnet.
pub(crate) fn refusal(method: &str) -> String {
    format!("{method} exists only on a single-producer devnet (`bttd devnet` without --validators)")
}

/// Each of [`METHODS`], answering -32000 [`refusal`].
pub(crate) fn refusing_module() -> Result<RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
    let mut module = RpcModule::new(());
    for &method in METHODS {
        module.register_method(method, move |_, _, _| {
            Err::<(), ErrorObjectOwned>(server_error(refusal(method)))
        })?;
    }
    Ok(module)
}

fn devnet_error(error: DevnetError) -> ErrorObjectOwned {
    match error {
        DevnetError::Chain(e) => internal(e),
        other => server_error(other.to_string()),
    }
}

impl Rpc {
    fn control(&self) -> RpcResult<&Arc<DevnetControl>> {
        self.ctx
            .devnet
            .get()
            .ok_or_else(|| server_error(refusal("this method")))
    }

    pub(crate) fn is_impersonated(&self, address: Address) -> bool {
        self.ctx
            .devnet
            .get()
            .is_some_and(|control| control.is_impersonated(address))
    }

    /// Automine: mines the block holding `hash` before the submission is answered; an error
    /// when the builder left the transaction out.
    pub(crate) fn automine(&self, hash: B256) -> RpcResult<()> {
        let Some(control) = self.ctx.devnet.get() else {
            return Ok(());
        };
        if control.mode() != MiningMode::Auto {
            return Ok(());
        }
        let mined = control
            .mine_if_pooled(&self.ctx, hash)
            .map_err(devnet_error)?;
        if let Some(mined) = mined
            && let Some((_, reason)) = mined.rejected.iter().find(|(h, _)| *h == hash)
        {
            return Err(server_error(reason.clone()));
        }
        Ok(())
    }

    /// Mines one block carrying `overrides` (a cheat), named `label` in its extraData.
    fn cheat(&self, label: &'static str, item: AccountOverride) -> RpcResult<()> {
        self.control()?
            .mine(
                &self.ctx,
                MineRequest {
                    overrides: vec![item],
                    label,
                    ..Default::default()
                },
            )
            .map_err(devnet_error)?;
        Ok(())
    }

    /// eth_sendTransaction from an impersonated account: filled as for a dev account, signed
    /// with the placeholder signature, pooled with the given sender.
    pub(crate) fn send_impersonated(&self, request: TransactionRequest) -> RpcResult<B256> {
        let from = request
            .from
            .ok_or_else(|| invalid_params("missing \"from\""))?;
        if !self.is_impersonated(from) {
            return Err(server_error(format!(
                "account {from} is not impersonated (call anvil_impersonateAccount first)"
            )));
        }
        let envelope = self.fill_and_sign_with(request, &|_| Ok(impersonation_signature(from)))?;
        let config = self.ctx.chain.config();
        let size = envelope.encode_2718_len();
        if size > bttd_runtime::tx::MAX_TX_SIZE {
            return Err(server_error(format!(
                "oversized data: transaction size {size}, limit {}",
                bttd_runtime::tx::MAX_TX_SIZE
            )));
        }
        let tx = RecoveredTx::impersonated(envelope, from, config.chain_id, config.block_gas_limit)
            .map_err(|e| server_error(e.to_string()))?;
        let hash = self
            .ctx
            .submit(tx)
            .map_err(|e| server_error(e.to_string()))?;
        self.automine(hash)?;
        Ok(hash)
    }
}

impl AnvilApiServer for Rpc {
    fn set_automine(&self, enabled: bool) -> RpcResult<()> {
        let control = self.control()?;
        if enabled {
            control.set_mode(MiningMode::Auto);
            // What arrived while automine was off goes into a block now, as anvil does.
            if !self.ctx.pool.lock().is_empty() {
                control
                    .mine(
                        &self.ctx,
                        MineRequest {
                            include_pool: true,
                            ..Default::default()
                        },
                    )
                    .map_err(devnet_error)?;
            }
        } else if control.mode() == MiningMode::Auto {
            control.set_mode(MiningMode::Never);
        }
        Ok(())
    }

    fn get_automine(&self) -> RpcResult<bool> {
        Ok(self.control()?.mode() == MiningMode::Auto)
    }

    fn set_interval_mining(&self, seconds: Quantity) -> RpcResult<()> {
        let seconds = seconds.u64("interval")?;
        if seconds > MAX_INTERVAL_SECONDS {
            return Err(invalid_params(format!(
                "interval of {seconds} s is above the {MAX_INTERVAL_SECONDS} s limit"
            )));
        }
        let control = self.control()?;
        control.set_mode(if seconds == 0 {
            MiningMode::Never
        } else {
            MiningMode::Interval(std::time::Duration::from_secs(seconds))
        });
        Ok(())
    }

    fn evm_mine(&self, options: Option<Value>) -> RpcResult<String> {
        let (timestamp, blocks) = match options {
            None | Some(Value::Null) => (None, 1),
            Some(Value::Object(map)) => {
                let get = |key: &str| -> RpcResult<Option<u64>> {
                    match map.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => Quantity::deserialize(v)
                            .map_err(|e| invalid_params(format!("{key}: {e}")))?
                            .u64(key)
                            .map(Some),
                    }
                };
                (get("timestamp")?, get("blocks")?.unwrap_or(1))
            }
            Some(v) => {
                let t = Quantity::deserialize(&v)
                    .map_err(|e| invalid_params(format!("timestamp: {e}")))?;
                (Some(t.u64("timestamp")?), 1)
            }
        };
        let control = self.control()?;
        if let Some(timestamp) = timestamp {
            control
                .set_next_timestamp(&self.ctx, timestamp)
                .map_err(devnet_error)?;
        }
        control
            .mine_many(&self.ctx, blocks, None)
            .map_err(devnet_error)?;
        Ok("0x0".into())
    }

    fn anvil_mine(&self, count: Option<Quantity>, interval: Option<Quantity>) -> RpcResult<()> {
        let count = count.map_or(Ok(1), |c| c.u64("block count"))?;
        let interval = interval.map(|i| i.u64("interval")).transpose()?;
        self.control()?
            .mine_many(&self.ctx, count, interval)
            .map_err(devnet_error)
    }

    fn set_balance(&self, address: Address, balance: Quantity) -> RpcResult<()> {
        self.cheat(
            "anvil_setBalance",
            AccountOverride {
                address,
                balance: Some(balance.0),
                ..Default::default()
            },
        )
    }

    fn set_code(&self, address: Address, code: Bytes) -> RpcResult<()> {
        let limit = revm::primitives::eip170::MAX_CODE_SIZE;
        if code.len() > limit {
            return Err(invalid_params(format!(
                "code of {} bytes exceeds the {limit}-byte limit",
                code.len()
            )));
        }
        self.cheat(
            "anvil_setCode",
            AccountOverride {
                address,
                code: Some(code),
                ..Default::default()
            },
        )
    }

    fn set_nonce(&self, address: Address, nonce: Quantity) -> RpcResult<()> {
        let nonce = nonce.u64("nonce")?;
        self.cheat(
            "anvil_setNonce",
            AccountOverride {
                address,
                nonce: Some(nonce),
                ..Default::default()
            },
        )
    }

    fn set_storage_at(&self, address: Address, slot: Quantity, value: Quantity) -> RpcResult<bool> {
        self.cheat(
            "anvil_setStorageAt",
            AccountOverride {
                address,
                storage: vec![(B256::from(slot.0), B256::from(value.0))],
                ..Default::default()
            },
        )?;
        Ok(true)
    }

    fn impersonate_account(&self, address: Address) -> RpcResult<()> {
        self.control()?.impersonate(address, true);
        Ok(())
    }

    fn stop_impersonating_account(&self, address: Address) -> RpcResult<()> {
        self.control()?.impersonate(address, false);
        Ok(())
    }

    fn send_unsigned_transaction(&self, request: TransactionRequest) -> RpcResult<B256> {
        self.control()?;
        self.send_impersonated(request)
    }

    fn drop_transaction(&self, hash: B256) -> RpcResult<Option<B256>> {
        self.control()?;
        let removed = self.ctx.pool.lock().remove_invalid(&[hash]);
        Ok(removed.contains(&hash).then_some(hash))
    }

    fn snapshot(&self) -> RpcResult<U256> {
        Ok(U256::from(self.control()?.snapshot(&self.ctx)))
    }

    fn revert(&self, id: Quantity) -> RpcResult<bool> {
        let control = self.control()?;
        let Ok(id) = u64::try_from(id.0) else {
            return Ok(false);
        };
        control.revert(&self.ctx, id).map_err(devnet_error)
    }

    fn increase_time(&self, seconds: Quantity) -> RpcResult<U256> {
        let seconds = seconds.u64("seconds")?;
        let offset = self
            .control()?
            .increase_time(seconds)
            .map_err(devnet_error)?;
        Ok(U256::from(offset.max(0).unsigned_abs()))
    }

    fn set_next_block_timestamp(&self, timestamp: Quantity) -> RpcResult<()> {
        let timestamp = timestamp.u64("timestamp")?;
        self.control()?
            .set_next_timestamp(&self.ctx, timestamp)
            .map_err(devnet_error)
    }

    fn set_next_block_base_fee_per_gas(&self, base_fee: Quantity) -> RpcResult<()> {
        let base_fee = base_fee.u64("base fee")?;
        self.control()?.set_next_base_fee(base_fee);
        Ok(())
    }

    fn reset(&self, options: Option<Value>) -> RpcResult<()> {
        let control = self.control()?;
        if let Some(url) = options
            .as_ref()
            .and_then(|o| o.get("forking"))
            .and_then(|f| f.get("jsonRpcUrl"))
            .filter(|u| !u.is_null())
        {
            return Err(invalid_params(format!(
                "forking is not supported: bttd devnet cannot fork another chain (jsonRpcUrl {url}); anvil_reset without it goes back to genesis"
            )));
        }
        control.reset(&self.ctx).map_err(devnet_error)
    }

    fn node_info(&self) -> RpcResult<Value> {
        let control = self.control()?;
        let chain = &self.ctx.chain;
        let head = chain.head();
        let config = chain.config();
        let next_base_fee = bttd_runtime::block::next_base_fee(&head, config.min_base_fee);
        Ok(json!({
            "currentBlockNumber": format!("{:#x}", head.number),
            "currentBlockTimestamp": head.timestamp,
            "currentBlockHash": head.hash(),
            "hardFork": "prague",
            "transactionOrder": "fees",
            "environment": {
                "baseFee": next_base_fee.to_string(),
                "chainId": config.chain_id,
                "gasLimit": config.block_gas_limit.to_string(),
                "gasPrice": next_base_fee.to_string(),
            },
            "forkConfig": {},
            "network": "bttd devnet",
            "miner": control.beneficiary(),
            "automine": control.mode() == MiningMode::Auto,
        }))
    }
}
