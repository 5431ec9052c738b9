//! The `web3` namespace.

use alloy_primitives::{B256, Bytes, keccak256};
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::error::RpcResult;

#[rpc(server, namespace = "web3")]
pub(crate) trait Web3Api {
    /// The node's name and version.
    #[method(name = "clientVersion")]
    fn client_version(&self) -> RpcResult<String>;

    /// Keccak-256 of the given bytes.
    #[method(name = "sha3")]
    fn sha3(&self, data: Bytes) -> RpcResult<B256>;
}

impl Web3ApiServer for Rpc {
    fn client_version(&self) -> RpcResult<String> {
        Ok(self.ctx.client_version.clone())
    }

    fn sha3(&self, data: Bytes) -> RpcResult<B256> {
        Ok(keccak256(&data))
    }
}
