//! Node-held dev accounts: eth_accounts, eth_sendTransaction, eth_signTransaction, eth_sign,
//! personal_sign and eth_signTypedData_v4.
//!
//! Why: ethers' `provider.getSigner()`, web3.py's default account, hardhat/truffle scripts and
//! forge's `--unlocked` send through the node instead of holding a key, as they do against
//! anvil or hardhat. The keys are the well-known test mnemonic's, so this is on for
//! `bttd devnet` and off for `bttd node` unless asked for (`--dev-accounts`); with no keys
//! configured, eth_accounts is `[]` and every signing method answers "unknown account".
//!
//! eth_sendTransaction fills what the request leaves out the way geth does: the nonce from the
//! pool's pending nonce, the gas limit from eth_estimateGas, the chain id, and the fees —
//! legacy when `gasPrice` is given, otherwise EIP-1559 with the suggested tip and a max fee of
//! twice the next base fee plus the tip. The signed transaction then goes through exactly the
//! eth_sendRawTransaction path, so checks and error wording are the same.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_dyn_abi::TypedData;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bttd_runtime::block::next_base_fee;
use jsonrpsee::proc_macros::rpc;

use super::Rpc;
use super::error::{RpcResult, internal, invalid_params, server_error};
use super::transactions::EthTransactionsApiServer;

#[rpc(server, namespace = "eth")]
pub(crate) trait EthDevApi {
    /// The dev accounts' addresses (empty when none are configured).
    #[method(name = "accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;

    /// Fills, signs and submits a transaction from a dev account.
    #[method(name = "sendTransaction", blocking)]
    fn send_transaction(&self, request: TransactionRequest) -> RpcResult<B256>;

    /// Fills and signs a transaction from a dev account without submitting it (raw EIP-2718).
    #[method(name = "signTransaction", blocking)]
    fn sign_transaction(&self, request: TransactionRequest) -> RpcResult<Bytes>;

    /// EIP-191 personal-message signature of `data` (geth's argument order).
    #[method(name = "sign")]
    fn sign(&self, address: Address, data: Bytes) -> RpcResult<Bytes>;

    /// EIP-712 signature of typed data, given as a JSON object or a JSON string.
    #[method(name = "signTypedData_v4")]
    fn sign_typed_data_v4(
        &self,
        address: Address,
        typed_data: serde_json::Value,
    ) -> RpcResult<Bytes>;
}

#[rpc(server, namespace = "personal")]
pub(crate) trait PersonalApi {
    /// As eth_sign, with the arguments the other way round.
    #[method(name = "sign")]
    fn personal_sign(&self, data: Bytes, address: Address) -> RpcResult<Bytes>;
}

impl Rpc {
    fn dev_signer(&self, address: Address) -> RpcResult<&PrivateKeySigner> {
        self.dev_signers
            .iter()
            .find(|signer| signer.address() == address)
            .ok_or_else(|| server_error("unknown account"))
    }

    /// Fills the request's missing fields and signs it with the sender's dev key.
    fn fill_and_sign(&self, request: TransactionRequest) -> RpcResult<TxEnvelope> {
        let from = request
            .from
            .ok_or_else(|| invalid_params("missing \"from\""))?;
        let signer = self.dev_signer(from)?.clone();
        self.fill_and_sign_with(request, &|hash: B256| {
            signer.sign_hash_sync(&hash).map_err(internal)
        })
    }

    /// Fills the request's missing fields and signs it with `sign` (a dev key, or the
    /// devnet's placeholder signature of an impersonated sender).
    pub(crate) fn fill_and_sign_with(
        &self,
        mut request: TransactionRequest,
        sign: &dyn Fn(B256) -> RpcResult<alloy_primitives::Signature>,
    ) -> RpcResult<TxEnvelope> {
        let from = request
            .from
            .ok_or_else(|| invalid_params("missing \"from\""))?;
        let chain = &self.ctx.chain;
        let chain_id = chain.config().chain_id;
        if let Some(requested) = request.chain_id
            && requested != chain_id
        {
            return Err(invalid_params(format!(
                "chainId {requested} does not match the node's {chain_id}"
            )));
        }
        let nonce = match request.nonce {
            Some(nonce) => nonce,
            None => {
                let state_nonce = chain.state().nonce(from).map_err(internal)?;
                self.ctx.pool.lock().pending_nonce(from, state_nonce)
            }
        };
        request.nonce = Some(nonce);
        let gas_limit = match request.gas {
            Some(gas) => gas,
            None => self.eth_estimate_gas(request.clone(), None, None)?.to(),
        };
        let to = request.to.unwrap_or(TxKind::Create);
        let value = request.value.unwrap_or(U256::ZERO);
        let input = request.input.input().cloned().unwrap_or_default();
        let envelope: TxEnvelope = if let Some(gas_price) = request.gas_price {
            let tx = TxLegacy {
                chain_id: Some(chain_id),
                nonce,
                gas_price,
                gas_limit,
                to,
                value,
                input,
            };
            let signature = sign(tx.signature_hash())?;
            tx.into_signed(signature).into()
        } else {
            let tip = match request.max_priority_fee_per_gas {
                Some(tip) => tip,
                None => self.suggested_tip()?,
            };
            let max_fee_per_gas = match request.max_fee_per_gas {
                Some(max_fee) => max_fee,
                None => (2 * u128::from(next_base_fee(&chain.head(), chain.config().min_base_fee)))
                    .checked_add(tip)
                    .ok_or_else(|| invalid_params("maxPriorityFeePerGas too large"))?,
            };
            let tx = TxEip1559 {
                chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas,
                max_priority_fee_per_gas: tip,
                to,
                value,
                access_list: request.access_list.unwrap_or_default(),
                input,
            };
            let signature = sign(tx.signature_hash())?;
            tx.into_signed(signature).into()
        };
        Ok(envelope)
    }

    fn sign_message(&self, address: Address, data: &[u8]) -> RpcResult<Bytes> {
        let signature = self
            .dev_signer(address)?
            .sign_message_sync(data)
            .map_err(internal)?;
        Ok(Bytes::copy_from_slice(&signature.as_bytes()))
    }
}

impl EthDevApiServer for Rpc {
    fn accounts(&self) -> RpcResult<Vec<Address>> {
        Ok(self
            .dev_signers
            .iter()
            .map(PrivateKeySigner::address)
            .collect())
    }

    fn send_transaction(&self, request: TransactionRequest) -> RpcResult<B256> {
        if let Some(from) = request.from
            && self.is_impersonated(from)
        {
            return self.send_impersonated(request);
        }
        let envelope = self.fill_and_sign(request)?;
        self.send_raw_transaction(envelope.encoded_2718().into())
    }

    fn sign_transaction(&self, request: TransactionRequest) -> RpcResult<Bytes> {
        Ok(self.fill_and_sign(request)?.encoded_2718().into())
    }

    fn sign(&self, address: Address, data: Bytes) -> RpcResult<Bytes> {
        self.sign_message(address, &data)
    }

    fn sign_typed_data_v4(
        &self,
        address: Address,
        typed_data: serde_json::Value,
    ) -> RpcResult<Bytes> {
        let signer = self.dev_signer(address)?;
        let typed: TypedData = match typed_data {
            serde_json::Value::String(text) => serde_json::from_str(&text),
            value => serde_json::from_value(value),
        }
        .map_err(|e| invalid_params(format!("invalid typed data: {e}")))?;
        let hash = typed
            .eip712_signing_hash()
            .map_err(|e| invalid_params(format!("invalid typed data: {e}")))?;
        let signature = signer.sign_hash_sync(&hash).map_err(internal)?;
        Ok(Bytes::copy_from_slice(&signature.as_bytes()))
    }
}

impl PersonalApiServer for Rpc {
    fn personal_sign(&self, data: Bytes, address: Address) -> RpcResult<Bytes> {
        self.sign_message(address, &data)
    }
}

#[cfg(test)]
mod tests {
    //! Signatures compared with viem's (`privateKeyToAccount(key).signMessage` /
    //! `signTypedData` for the first dev key), and a send through eth_sendTransaction.

    use alloy_consensus::Transaction as _;
    use alloy_primitives::{Signature, address, b256, bytes, hex};
    use serde_json::json;

    use super::*;
    use crate::RpcConfig;

    const DEV_KEY: B256 = b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
    const DEV_ADDRESS: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

    fn rpc(dev_accounts: Vec<B256>) -> Rpc {
        let ctx = crate::test_context();
        Rpc::new(
            ctx,
            RpcConfig {
                dev_accounts,
                ..RpcConfig::default()
            },
            None,
        )
        .unwrap()
    }

    fn recover_message(signature: &[u8], message: &[u8]) -> Address {
        Signature::try_from(signature)
            .expect("65 bytes")
            .recover_address_from_msg(message)
            .expect("recover")
    }

    #[test]
    fn personal_sign_and_eth_sign_match_viem() {
        let rpc = rpc(vec![DEV_KEY]);
        assert_eq!(rpc.accounts().unwrap(), vec![DEV_ADDRESS]);
        // viem: signMessage({ message: 'hello' })
        let expected = hex!(
            "f16ea9a3478698f695fd1401bfe27e9e4a7e8e3da94aa72b021125e31fa899cc573c48ea3fe1d4ab61a9db10c19032026e3ed2dbccba5a178235ac27f94504311c"
        );
        let personal = rpc
            .personal_sign(Bytes::from_static(b"hello"), DEV_ADDRESS)
            .unwrap();
        assert_eq!(personal.as_ref(), expected);
        assert_eq!(
            rpc.sign(DEV_ADDRESS, Bytes::from_static(b"hello")).unwrap(),
            personal
        );
        assert_eq!(recover_message(&personal, b"hello"), DEV_ADDRESS);
        // viem: signMessage({ message: { raw: '0xdeadbeef' } })
        let raw = rpc.sign(DEV_ADDRESS, bytes!("deadbeef")).unwrap();
        assert_eq!(
            raw.as_ref(),
            hex!(
                "a114c834af73872c6c9efe918d85b0b1b34a486d10f9011e2630e28417c828c060dbd65cda67e73d52ebb7c555260621dbc1b0b4036acb61086bba091ac3f1641b"
            )
        );
    }

    #[test]
    fn typed_data_v4_matches_viem() {
        let rpc = rpc(vec![DEV_KEY]);
        let typed = json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
                ],
                "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
                "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}]
            },
            "primaryType": "Mail",
            "domain": {"name": "Ether Mail", "version": "1", "chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
            "message": {
                "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"
            }
        });
        // viem: signTypedData of the same data.
        let expected = hex!(
            "6ea8bb309a3401225701f3565e32519f94a0ea91a5910ce9229fe488e773584c0390416a2190d9560219dab757ecca2029e63fa9d1c2aebf676cc25b9f03126a1b"
        );
        assert_eq!(
            rpc.sign_typed_data_v4(DEV_ADDRESS, typed.clone())
                .unwrap()
                .as_ref(),
            expected
        );
        // ethers and viem send the typed data as a JSON string.
        let as_string = serde_json::Value::String(typed.to_string());
        assert_eq!(
            rpc.sign_typed_data_v4(DEV_ADDRESS, as_string)
                .unwrap()
                .as_ref(),
            expected
        );
    }

    #[test]
    fn unknown_account_is_refused() {
        let rpc = rpc(Vec::new());
        assert!(rpc.accounts().unwrap().is_empty());
        let error = rpc
            .personal_sign(Bytes::from_static(b"hello"), DEV_ADDRESS)
            .unwrap_err();
        assert_eq!((error.code(), error.message()), (-32000, "unknown account"));
        let request = TransactionRequest::default()
            .from(DEV_ADDRESS)
            .to(DEV_ADDRESS);
        assert_eq!(
            rpc.send_transaction(request).unwrap_err().message(),
            "unknown account"
        );
    }

    #[test]
    fn send_transaction_fills_signs_and_pools() {
        let rpc = rpc(vec![DEV_KEY]);
        let to = address!("000000000000000000000000000000000000bEEF");
        let request = TransactionRequest::default()
            .from(DEV_ADDRESS)
            .to(to)
            .value(U256::from(5));
        let first = rpc.send_transaction(request.clone()).unwrap();
        let second = rpc.send_transaction(request.clone()).unwrap();
        let pool = rpc.ctx.pool.lock();
        let (first, second) = (
            pool.get(&first).expect("pooled"),
            pool.get(&second).expect("pooled"),
        );
        assert_eq!(
            (first.sender(), second.sender()),
            (DEV_ADDRESS, DEV_ADDRESS)
        );
        let (first, second) = (first.into_envelope(), second.into_envelope());
        assert_eq!(
            (first.nonce(), second.nonce()),
            (0, 1),
            "nonces follow the pool"
        );
        assert!(first.is_eip1559());
        assert_eq!(first.gas_limit(), 21_000, "gas from eth_estimateGas");
        assert_eq!(first.chain_id(), Some(bttd_genesis::DEVNET_CHAIN_ID));
        drop(pool);
        let legacy = rpc
            .sign_transaction(request.nonce(7).gas_price(3_000_000_000))
            .unwrap();
        let decoded =
            <TxEnvelope as alloy_eips::eip2718::Decodable2718>::decode_2718(&mut legacy.as_ref())
                .unwrap();
        assert!(decoded.is_legacy());
        assert_eq!(decoded.nonce(), 7);
    }
}
