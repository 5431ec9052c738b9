//! What the bridge needs from its root chain, TRON: the head and the solidified (final) block,
//! contract logs in a block range, receipts, read-only calls, and submitting a contract call
//! (build, sign, broadcast) and following it to finality. `JavaTron` implements it over
//! java-tron's interfaces; `SolidLogFollower` reads logs only from solidified blocks, so an
//! event a reorg removes is never reported.

use std::time::Duration;

use alloy_primitives::{B256, Bytes};
use alloy_signer_local::PrivateKeySigner;

use crate::address::TronAddress;

/// A block as the bridge refers to it: TRON's block id (8-byte number, then 24 bytes of hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub number: u64,
    pub id: B256,
    pub parent: B256,
    /// Seconds.
    pub timestamp: u64,
}

/// One contract log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLog {
    pub address: TronAddress,
    pub topics: Vec<B256>,
    pub data: Bytes,
    pub block_number: u64,
    pub block_id: B256,
    pub txid: B256,
    pub log_index: u64,
}

/// A transaction's outcome (java-tron's `TransactionInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub txid: B256,
    pub block_number: u64,
    /// java-tron's contract result: `SUCCESS`, `REVERT`, `OUT_OF_ENERGY`, ...
    pub result: String,
    /// Sun burned.
    pub fee: u64,
    pub energy_used: u64,
    pub output: Bytes,
    pub logs: Vec<(TronAddress, Vec<B256>, Bytes)>,
}

impl Receipt {
    pub fn succeeded(&self) -> bool {
        self.result == "SUCCESS"
    }
}

/// A contract call to submit.
#[derive(Debug, Clone)]
pub struct ContractCall {
    pub contract: TronAddress,
    pub data: Bytes,
    /// Sun sent with the call.
    pub call_value: u64,
    /// Most sun the call may burn for energy.
    pub fee_limit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RootChainError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("unexpected response from {endpoint}: {reason}")]
    Response { endpoint: String, reason: String },
    #[error("{endpoint} answered with an error: {message}")]
    Node { endpoint: String, message: String },
    /// A broadcast java-tron refused, with its code (`SIGERROR`, `TAPOS_ERROR`, ...).
    #[error("broadcast refused: {code}: {message}")]
    Refused { code: String, message: String },
    /// The node built a transaction other than the one asked for.
    #[error("the node's transaction does not match the call: {0}")]
    Mismatch(String),
    #[error("contract call failed: {0}")]
    CallFailed(String),
    #[error("transaction {txid} not solidified within {waited:?}")]
    Timeout { txid: B256, waited: Duration },
    #[error("signing: {0}")]
    Sign(String),
}

/// The root chain as the bridge sees it.
#[allow(async_fn_in_trait)]
pub trait RootChain {
    /// The newest block.
    async fn head(&self) -> Result<BlockRef, RootChainError>;
    /// The newest solidified (final) block.
    async fn finalized(&self) -> Result<BlockRef, RootChainError>;
    /// Logs of `address` with first topic `topic0` (any, if `None`) in blocks `from..=to`.
    async fn logs(
        &self,
        address: TronAddress,
        topic0: Option<B256>,
        from: u64,
        to: u64,
    ) -> Result<Vec<RootLog>, RootChainError>;
    /// The outcome of `txid`, `None` if no block holds it; `solid` asks for solidified blocks only.
    async fn receipt(&self, txid: B256, solid: bool) -> Result<Option<Receipt>, RootChainError>;
    /// A read-only call on the newest state; returns the call's output.
    async fn call(
        &self,
        from: TronAddress,
        contract: TronAddress,
        data: Bytes,
    ) -> Result<Bytes, RootChainError>;
    /// Builds, signs and broadcasts `call` from `signer`'s account; returns the txID.
    async fn submit(
        &self,
        signer: &PrivateKeySigner,
        call: &ContractCall,
    ) -> Result<B256, RootChainError>;
    /// Waits until `txid` is in a solidified block and returns its receipt.
    async fn wait_solidified(
        &self,
        txid: B256,
        timeout: Duration,
    ) -> Result<Receipt, RootChainError> {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(receipt) = self.receipt(txid, true).await? {
                return Ok(receipt);
            }
            if start.elapsed() >= timeout {
                return Err(RootChainError::Timeout {
                    txid,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200).min(timeout / 10)).await;
        }
    }
}

/// Follows one contract's logs in solidified blocks only, each block once, in order.
#[derive(Debug, Clone)]
pub struct SolidLogFollower {
    pub address: TronAddress,
    pub topic0: Option<B256>,
    /// The first block not yet read.
    pub next: u64,
}

impl SolidLogFollower {
    pub fn new(address: TronAddress, topic0: Option<B256>, from: u64) -> Self {
        Self {
            address,
            topic0,
            next: from,
        }
    }

    /// The logs of the blocks solidified since the last poll.
    pub async fn poll(&mut self, chain: &impl RootChain) -> Result<Vec<RootLog>, RootChainError> {
        let finalized = chain.finalized().await?.number;
        if finalized < self.next {
            return Ok(Vec::new());
        }
        let logs = chain
            .logs(self.address, self.topic0, self.next, finalized)
            .await?;
        self.next = finalized + 1;
        Ok(logs)
    }
}
