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
use bttd_contracts::channels::{ChannelInfo, IBandwidthChannels};
use eyre::{WrapErr, bail, eyre};
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

    /// `channels(id)` at the head, through `channel_getInfo` (zeros for an unknown id).
    pub async fn channel(&self, id: B256) -> eyre::Result<ChannelInfo> {
        let v: Option<Value> = self.request("channel_getInfo", rpc_params![id]).await?;
        let Some(v) = v else {
            return Ok(ChannelInfo::default());
        };
        let field = |name: &str| -> eyre::Result<Value> {
            v.get(name)
                .cloned()
                .ok_or_else(|| eyre!("channel_getInfo answer lacks {name}"))
        };
        Ok(ChannelInfo {
            payer: serde_json::from_value(field("payer")?)?,
            payee: serde_json::from_value(field("payee")?)?,
            deposit: serde_json::from_value(field("deposit")?)?,
            claimed: serde_json::from_value(field("claimed")?)?,
            settle_window: serde_json::from_value(field("settleWindow")?)?,
            closes_at: serde_json::from_value(field("closesAt")?)?,
        })
    }

    /// Any `channel_*` method, answer as JSON (for `info`).
    pub async fn raw(&self, method: &str, params: Vec<Value>) -> eyre::Result<Value> {
        let mut p = jsonrpsee::core::params::ArrayParams::new();
        for v in params {
            p.insert(v)?;
        }
        self.request(method, p).await
    }

    pub async fn logs(&self, filter: &Filter) -> eyre::Result<Vec<Log>> {
        self.request("eth_getLogs", rpc_params![filter]).await
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
        let signature = signer.sign_hash_sync(&tx.signature_hash())?;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        let raw = Bytes::from(envelope.encoded_2718());
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

/// An RPC error, with `BandwidthChannels` custom errors in revert data decoded.
fn describe_revert(e: &jsonrpsee::core::ClientError) -> String {
    if let jsonrpsee::core::ClientError::Call(obj) = e
        && let Some(data) = obj.data()
        && let Ok(bytes) = serde_json::from_str::<Bytes>(data.get())
        && let Ok(err) = IBandwidthChannels::IBandwidthChannelsErrors::abi_decode(&bytes)
    {
        return format!("{}: {err:?}", obj.message());
    }
    e.to_string()
}

/// Calldata of a contract call.
pub fn calldata(call: impl SolCall) -> Bytes {
    call.abi_encode().into()
}
