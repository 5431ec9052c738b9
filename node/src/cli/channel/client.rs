//! The CLI's view of a node: a small JSON-RPC client (jsonrpsee over HTTP) that reads chain
//! state and sends locally signed EIP-1559 transactions with eth_sendRawTransaction, so keys
//! never leave the machine running `bttd channel`.

use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_rpc_types_eth::{Filter, Log, TransactionReceipt};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolInterface};
use bttd_contracts::channels::IBandwidthChannels;
use eyre::{WrapErr, bail, eyre};
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::{Value, json};

/// How long to wait for a transaction's receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A node at `--rpc-url`.
#[derive(Debug, Clone)]
pub struct Node {
    client: HttpClient,
    url: String,
}

impl Node {
    pub fn connect(url: &str) -> eyre::Result<Self> {
        let client = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .wrap_err_with(|| format!("bad --rpc-url {url}"))?;
        Ok(Self {
            client,
            url: url.to_owned(),
        })
    }

    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: jsonrpsee::core::params::ArrayParams,
    ) -> eyre::Result<T> {
        self.client
            .request(method, params)
            .await
            .map_err(|e| eyre!("{method} at {}: {e}", self.url))
    }

    pub async fn chain_id(&self) -> eyre::Result<u64> {
        Ok(self
            .request::<U64>("eth_chainId", rpc_params![])
            .await?
            .to())
    }

    pub async fn block_number(&self) -> eyre::Result<u64> {
        Ok(self
            .request::<U64>("eth_blockNumber", rpc_params![])
            .await?
            .to())
    }

    /// The head block's number, timestamp and base fee.
    pub async fn head(&self) -> eyre::Result<(u64, u64, u128)> {
        let block: Value = self
            .request("eth_getBlockByNumber", rpc_params!["latest", false])
            .await?;
        let field = |name: &str| -> eyre::Result<u128> {
            let v = block[name]
                .as_str()
                .ok_or_else(|| eyre!("head block has no {name}"))?;
            Ok(u128::from_str_radix(v.trim_start_matches("0x"), 16)?)
        };
        Ok((
            field("number")?.try_into()?,
            field("timestamp")?.try_into()?,
            field("baseFeePerGas").unwrap_or(0),
        ))
    }

    /// Timestamp of the head block.
    pub async fn head_timestamp(&self) -> eyre::Result<u64> {
        let block: Value = self
            .request("eth_getBlockByNumber", rpc_params!["latest", false])
            .await?;
        let ts = block["timestamp"]
            .as_str()
            .ok_or_else(|| eyre!("head block has no timestamp"))?;
        Ok(u64::from_str_radix(ts.trim_start_matches("0x"), 16)?)
    }

    /// Any `channel_*` method, answer as JSON (for `info`).
    pub async fn raw(&self, method: &str, params: Vec<Value>) -> eyre::Result<Value> {
        let mut p = jsonrpsee::core::params::ArrayParams::new();
        for v in params {
            p.insert(v)?;
        }
        self.request(method, p).await
    }

    /// eth_getLogs, with the node's error kept whole (a refused range is split by the caller).
    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, ClientError> {
        self.client
            .request("eth_getLogs", rpc_params![filter])
            .await
    }

    /// eth_call of `input` on `to` at `block` (a number, or the head when `None`).
    pub async fn call(&self, to: Address, input: Bytes, block: Option<u64>) -> eyre::Result<Bytes> {
        let tag = block.map_or_else(|| json!("latest"), |n| json!(U64::from(n)));
        self.request(
            "eth_call",
            rpc_params![json!({ "to": to, "input": input }), tag],
        )
        .await
    }

    /// The account's transaction count at `tag` ("latest" or "pending").
    pub async fn nonce(&self, address: Address, tag: &str) -> eyre::Result<u64> {
        Ok(self
            .request::<U64>("eth_getTransactionCount", rpc_params![address, tag])
            .await?
            .to())
    }

    pub async fn suggested_tip(&self) -> eyre::Result<u128> {
        let tip: U256 = self
            .request("eth_maxPriorityFeePerGas", rpc_params![])
            .await?;
        Ok(tip.try_into().unwrap_or(u128::MAX))
    }

    /// eth_estimateGas of a call from `from` (reverts decoded).
    pub async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        input: &Bytes,
    ) -> eyre::Result<u64> {
        let call = json!({ "from": from, "to": to, "input": input });
        let gas: U64 = self
            .client
            .request("eth_estimateGas", rpc_params![call])
            .await
            .map_err(|e| eyre!("{}", describe_revert(&e)))?;
        Ok(gas.to())
    }

    /// eth_sendRawTransaction, with the node's error kept whole (an underpriced replacement
    /// is bid up by the caller).
    pub async fn send_raw(&self, raw: Bytes) -> Result<B256, ClientError> {
        self.client
            .request("eth_sendRawTransaction", rpc_params![raw])
            .await
    }

    pub async fn receipt(&self, hash: B256) -> eyre::Result<Option<TransactionReceipt>> {
        self.request("eth_getTransactionReceipt", rpc_params![hash])
            .await
    }

    /// Signs and sends a call to the channels contract; waits for the receipt and fails
    /// (with the decoded custom error where the node gives revert data) if it reverted or
    /// would revert.
    pub async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        value: U256,
        input: Bytes,
    ) -> eyre::Result<TransactionReceipt> {
        let from = signer.address();
        let call = json!({ "from": from, "to": to, "value": value, "input": input });
        let gas: U64 = self
            .client
            .request("eth_estimateGas", rpc_params![call])
            .await
            .map_err(|e| eyre!("{}", describe_revert(&e)))?;
        let (chain_id, nonce, tip, head): (U64, U64, U256, Value) = tokio::try_join!(
            self.request("eth_chainId", rpc_params![]),
            self.request("eth_getTransactionCount", rpc_params![from, "pending"]),
            self.request("eth_maxPriorityFeePerGas", rpc_params![]),
            self.request("eth_getBlockByNumber", rpc_params!["latest", false]),
        )?;
        let base_fee = head["baseFeePerGas"]
            .as_str()
            .map(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16))
            .transpose()?
            .unwrap_or_default();
        let tip: u128 = tip.to();
        let tx = TxEip1559 {
            chain_id: chain_id.to(),
            nonce: nonce.to(),
            // Estimation is exact; a margin covers state moving between estimate and inclusion.
            gas_limit: gas.to::<u64>() * 6 / 5,
            max_fee_per_gas: 2 * base_fee + tip,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        };
        let raw = sign_1559(signer, tx)?;
        let hash: B256 = self
            .request("eth_sendRawTransaction", rpc_params![raw])
            .await?;
        tracing::debug!(target: "bttd::channel", %hash, "sent");
        let receipt = self.wait_receipt(hash).await?;
        if !receipt.status() {
            bail!(
                "transaction {hash} reverted (gas used {})",
                receipt.gas_used
            );
        }
        Ok(receipt)
    }

    async fn wait_receipt(&self, hash: B256) -> eyre::Result<TransactionReceipt> {
        let start = Instant::now();
        loop {
            let r: Option<TransactionReceipt> = self
                .request("eth_getTransactionReceipt", rpc_params![hash])
                .await?;
            if let Some(r) = r {
                return Ok(r);
            }
            if start.elapsed() > RECEIPT_TIMEOUT {
                bail!("no receipt for {hash} after {RECEIPT_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An RPC error, with `BandwidthChannels` custom errors in revert data decoded; a node's
/// error answer is its message (for a `require` that is "execution reverted: REASON").
fn describe_revert(e: &jsonrpsee::core::ClientError) -> String {
    if let jsonrpsee::core::ClientError::Call(obj) = e {
        if let Some(data) = obj.data()
            && let Ok(bytes) = serde_json::from_str::<Bytes>(data.get())
            && let Ok(err) = IBandwidthChannels::IBandwidthChannelsErrors::abi_decode(&bytes)
        {
            return format!("{}: {err:?}", obj.message());
        }
        return obj.message().to_string();
    }
    e.to_string()
}

/// A signed EIP-1559 transaction, encoded for eth_sendRawTransaction.
pub fn sign_1559(signer: &PrivateKeySigner, tx: TxEip1559) -> eyre::Result<Bytes> {
    let signature = signer.sign_hash_sync(&tx.signature_hash())?;
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    Ok(Bytes::from(envelope.encoded_2718()))
}

/// Calldata of a contract call.
pub fn calldata(call: impl SolCall) -> Bytes {
    call.abi_encode().into()
}
