//! JSON-RPC error objects with geth's codes and wording, so client libraries classify them
//! as they do against geth (viem and ethers match on code 3 and on message text).

use alloy_primitives::{Bytes, U256};
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};

/// geth's generic server error.
pub(crate) const SERVER_ERROR: i32 = -32000;
pub(crate) const INVALID_PARAMS: i32 = -32602;
pub(crate) const INTERNAL_ERROR: i32 = -32603;
/// EIP-1474 "limit exceeded".
pub(crate) const LIMIT_EXCEEDED: i32 = -32005;
/// geth's code for a reverted eth_call / eth_estimateGas.
pub(crate) const EXECUTION_REVERTED: i32 = 3;

pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub(crate) fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(SERVER_ERROR, message.into(), None::<()>)
}

pub(crate) fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(INVALID_PARAMS, message.into(), None::<()>)
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(LIMIT_EXCEEDED, message.into(), None::<()>)
}

/// A failure on our side (storage, corrupt data): logged, reported as -32603.
pub(crate) fn internal(error: impl std::fmt::Display) -> ErrorObjectOwned {
    tracing::error!(target: "bttd::rpc", %error, "internal error serving a request");
    ErrorObject::owned(
        INTERNAL_ERROR,
        format!("internal error: {error}"),
        None::<()>,
    )
}

/// geth's "header not found" for a block that does not exist (yet).
pub(crate) fn header_not_found() -> ErrorObjectOwned {
    server_error("header not found")
}

/// A state query for a block other than the head.
/// A revert: code 3, "execution reverted" plus the decoded reason when there is one, and the
/// raw revert data (custom errors included) as `data`.
pub(crate) fn reverted(output: Bytes) -> ErrorObjectOwned {
    let message = match decode_revert_reason(&output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_owned(),
    };
    ErrorObject::owned(EXECUTION_REVERTED, message, Some(output))
}

const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
const PANIC_SELECTOR: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

/// Decodes `Error(string)` and `Panic(uint256)` revert data as geth's `abi.UnpackRevert`.
pub(crate) fn decode_revert_reason(data: &[u8]) -> Option<String> {
    let (selector, body) = data.split_first_chunk::<4>()?;
    if *selector == ERROR_SELECTOR {
        let offset = word_as_usize(body, 0)?;
        let len = word_as_usize(body, offset)?;
        let start = offset.checked_add(32)?;
        let bytes = body.get(start..start.checked_add(len)?)?;
        return String::from_utf8(bytes.to_vec()).ok();
    }
    if *selector == PANIC_SELECTOR {
        let code = U256::from_be_slice(body.get(..32)?);
        return Some(panic_reason(code));
    }
    None
}

fn word_as_usize(data: &[u8], at: usize) -> Option<usize> {
    let word = data.get(at..at.checked_add(32)?)?;
    usize::try_from(U256::from_be_slice(word)).ok()
}

/// Solidity's panic codes, worded as geth words them.
fn panic_reason(code: U256) -> String {
    let known = match u64::try_from(code) {
        Ok(0x00) => "generic panic",
        Ok(0x01) => "assert(false)",
        Ok(0x11) => "arithmetic underflow or overflow",
        Ok(0x12) => "division or modulo by zero",
        Ok(0x21) => "enum overflow",
        Ok(0x22) => "invalid encoded storage byte array accessed",
        Ok(0x31) => "out-of-bounds array access; popping on an empty array",
        Ok(0x32) => "out-of-bounds access of an array or bytesN",
        Ok(0x41) => "out of memory",
        Ok(0x51) => "uninitialized function",
        _ => return format!("unknown panic code: {code:#x}"),
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    #[test]
    fn decodes_error_string() {
        // Error("nope")
        let data = hex!(
            "08c379a0"
            "0000000000000000000000000000000000000000000000000000000000000020"
            "0000000000000000000000000000000000000000000000000000000000000004"
            "6e6f706500000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(decode_revert_reason(&data).as_deref(), Some("nope"));
        let err = reverted(Bytes::copy_from_slice(&data));
        assert_eq!(err.code(), 3);
        assert_eq!(err.message(), "execution reverted: nope");
    }

    #[test]
    fn decodes_panic_and_tolerates_garbage() {
        let mut data = PANIC_SELECTOR.to_vec();
        data.extend_from_slice(&U256::from(0x11).to_be_bytes::<32>());
        assert_eq!(
            decode_revert_reason(&data).as_deref(),
            Some("arithmetic underflow or overflow")
        );
        assert_eq!(decode_revert_reason(&[]), None);
        assert_eq!(decode_revert_reason(&ERROR_SELECTOR), None);
        let mut huge = ERROR_SELECTOR.to_vec();
        huge.extend_from_slice(&[0xff; 64]);
        assert_eq!(decode_revert_reason(&huge), None);
        let custom = reverted(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(custom.message(), "execution reverted");
        assert_eq!(custom.data().map(|d| d.get()), Some("\"0xdeadbeef\""));
    }
}
