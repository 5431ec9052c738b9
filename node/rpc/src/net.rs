//! The `net` namespace. bttd has no devp2p: the peer count is not reported.

use alloy_primitives::U64;
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::error::RpcResult;

#[rpc(server, namespace = "net")]
pub(crate) trait NetApi {
    /// The chain id as a decimal string (geth returns the network id, equal to it here).
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;

    /// Always true while the server runs.
    #[method(name = "listening")]
    fn listening(&self) -> RpcResult<bool>;

    /// Connected peers (not tracked by the RPC layer yet: 0).
    #[method(name = "peerCount")]
    fn peer_count(&self) -> RpcResult<U64>;
}

impl NetApiServer for Rpc {
    fn version(&self) -> RpcResult<String> {
        Ok(self.ctx.chain.config().chain_id.to_string())
    }

    fn listening(&self) -> RpcResult<bool> {
        Ok(true)
    }

    fn peer_count(&self) -> RpcResult<U64> {
        Ok(U64::from(
            self.consensus
                .as_deref()
                .map(|i| i.peer_count())
                .unwrap_or_default(),
        ))
    }
}
