//! Transactions as the node handles them: decoded from their EIP-2718 bytes, checked against
//! the rules that need no state (chain id, type, signature, intrinsic gas, fee sanity), and
//! with the sender recovered exactly once. Everything downstream (mempool, block builder,
//! RPC) works on [`RecoveredTx`] and never recovers a signature again.

use alloy_consensus::{Transaction, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use revm::context_interface::cfg::gas::calculate_initial_tx_gas;
use revm::primitives::hardfork::SpecId;

/// The largest transaction the node accepts, in encoded bytes (geth's txMaxSize).
pub const MAX_TX_SIZE: usize = 128 * 1024;

/// Why a transaction was refused before it touched any state. The messages are geth's, so
/// clients that match on them (ethers, viem, web3.py) behave as they do against geth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("rlp: {0}")]
    Decode(String),
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized { size: usize, limit: usize },
    #[error("transaction type not supported: blob transactions are not accepted on this chain")]
    BlobNotSupported,
    #[error("invalid chain id for signer: have {have}, want {want}")]
    WrongChainId { have: u64, want: u64 },
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    NotReplayProtected,
    #[error("invalid transaction v, r, s values")]
    InvalidSignature,
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGasTooLow { gas: u64, needed: u64 },
    #[error("exceeds block gas limit")]
    GasLimitExceeded,
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    #[error(
        "max fee per gas less than block base fee: maxFeePerGas: {max_fee}, baseFee: {base_fee}"
    )]
    FeeCapTooLow { max_fee: u128, base_fee: u64 },
    #[error("max initcode size exceeded: code size {size}, limit {limit}")]
    InitcodeTooLarge { size: usize, limit: usize },
    /// `gas * maxFee + value` does not fit in 256 bits, so no balance can ever pay it. geth's
    /// wording (its state transition's `buyGas`). Wrapping arithmetic would price such a
    /// transaction at almost nothing; it is refused here, before any state is read, so a peer
    /// that gossips one is at fault whatever its head.
    #[error(
        "insufficient funds for gas * price + value: address {sender} required balance exceeds 256 bits"
    )]
    CostOverflow { sender: Address },
}

/// A transaction whose sender has been recovered and whose hash and size are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTx {
    envelope: TxEnvelope,
    sender: Address,
    hash: B256,
    size: usize,
    intrinsic_gas: u64,
    /// `gas * maxFee + value`, checked to fit in 256 bits when the transaction was recovered.
    max_cost: U256,
}

impl RecoveredTx {
    /// Decodes EIP-2718 bytes from a client or a peer's gossip, runs every stateless check and
    /// recovers the sender. `block_gas_limit` bounds the transaction's gas limit. Admission
    /// policy on top of the block rules of [`RecoveredTx::from_envelope`]: a transaction
    /// without a chain id is refused (geth's RPC default), since anyone can replay it on any
    /// chain.
    pub fn decode(raw: &[u8], chain_id: u64, block_gas_limit: u64) -> Result<Self, TxError> {
        if raw.len() > MAX_TX_SIZE {
            return Err(TxError::Oversized {
                size: raw.len(),
                limit: MAX_TX_SIZE,
            });
        }
        let mut buf = raw;
        let envelope =
            TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))?;
        if !buf.is_empty() {
            return Err(TxError::Decode("input contains more than one value".into()));
        }
        if envelope.chain_id().is_none() {
            return Err(TxError::NotReplayProtected);
        }
        Self::from_envelope(envelope, chain_id, block_gas_limit)
    }

    /// Checks and recovers an already decoded envelope against the block rules only (blocks
    /// from peers, tests): a legacy transaction without a chain id is valid in a block.
    pub fn from_envelope(
        envelope: TxEnvelope,
        chain_id: u64,
        block_gas_limit: u64,
    ) -> Result<Self, TxError> {
        if envelope.is_eip4844() {
            return Err(TxError::BlobNotSupported);
        }
        if let Some(have) = envelope.chain_id()
            && have != chain_id
        {
            return Err(TxError::WrongChainId {
                have,
                want: chain_id,
            });
        }
        // EIP-2: s must be in the lower half of the curve order. alloy's recovery accepts
        // high s silently, so check before recovering.
        if envelope.signature().normalize_s().is_some() {
            return Err(TxError::InvalidSignature);
        }
        let sender = envelope
            .recover_signer()
            .map_err(|_| TxError::InvalidSignature)?;
        Self::checked(envelope, sender, block_gas_limit)
    }

    /// A transaction from an impersonated account of `bttd devnet` (anvil_impersonateAccount):
    /// every check of [`RecoveredTx::from_envelope`] except the signature, which is the
    /// devnet's placeholder ([`impersonation_signature`]) and recovers to nobody; the sender
    /// is taken as given and stored with the block like any recovered sender. Never call this
    /// for bytes from a client or a peer.
    pub fn impersonated(
        envelope: TxEnvelope,
        sender: Address,
        chain_id: u64,
        block_gas_limit: u64,
    ) -> Result<Self, TxError> {
        // The size every other transaction was held to when decoded (and peers hold a block's
        // transactions to when they decode it).
        let size = alloy_eips::eip2718::Encodable2718::encode_2718_len(&envelope);
        if size > MAX_TX_SIZE {
            return Err(TxError::Oversized {
                size,
                limit: MAX_TX_SIZE,
            });
        }
        if envelope.is_eip4844() {
            return Err(TxError::BlobNotSupported);
        }
        match envelope.chain_id() {
            Some(have) if have != chain_id => {
                return Err(TxError::WrongChainId {
                    have,
                    want: chain_id,
                });
            }
            Some(_) => {}
            None => return Err(TxError::NotReplayProtected),
        }
        Self::checked(envelope, sender, block_gas_limit)
    }

    /// The stateless checks after the sender is known.
    fn checked(
        envelope: TxEnvelope,
        sender: Address,
        block_gas_limit: u64,
    ) -> Result<Self, TxError> {
        if envelope.gas_limit() > block_gas_limit {
            return Err(TxError::GasLimitExceeded);
        }
        if let Some(tip) = envelope.max_priority_fee_per_gas()
            && tip > envelope.max_fee_per_gas()
        {
            return Err(TxError::TipAboveFeeCap);
        }
        let input = envelope.input();
        let is_create = envelope.kind().is_create();
        if is_create && input.len() > revm::primitives::eip3860::MAX_INITCODE_SIZE {
            return Err(TxError::InitcodeTooLarge {
                size: input.len(),
                limit: revm::primitives::eip3860::MAX_INITCODE_SIZE,
            });
        }
        let intrinsic_gas = intrinsic_gas(&envelope);
        if envelope.gas_limit() < intrinsic_gas {
            return Err(TxError::IntrinsicGasTooLow {
                gas: envelope.gas_limit(),
                needed: intrinsic_gas,
            });
        }
        let max_cost = checked_max_cost(&envelope).ok_or(TxError::CostOverflow { sender })?;
        let hash = *envelope.tx_hash();
        let size = envelope.encode_2718_len();
        Ok(Self {
            envelope,
            sender,
            hash,
            size,
            intrinsic_gas,
            max_cost,
        })
    }

    pub fn envelope(&self) -> &TxEnvelope {
        &self.envelope
    }
    pub fn into_envelope(self) -> TxEnvelope {
        self.envelope
    }
    pub fn sender(&self) -> Address {
        self.sender
    }
    pub fn hash(&self) -> B256 {
        self.hash
    }
    /// Encoded EIP-2718 size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }
    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }
    pub fn intrinsic_gas(&self) -> u64 {
        self.intrinsic_gas
    }
    pub fn value(&self) -> U256 {
        self.envelope.value()
    }
    pub fn kind(&self) -> TxKind {
        self.envelope.kind()
    }
    pub fn input(&self) -> &Bytes {
        self.envelope.input()
    }
    /// The fee cap: `gasPrice` for legacy and EIP-2930, `maxFeePerGas` otherwise.
    pub fn max_fee_per_gas(&self) -> u128 {
        self.envelope.max_fee_per_gas()
    }
    /// The tip cap: `gasPrice` for legacy and EIP-2930, `maxPriorityFeePerGas` otherwise.
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.envelope
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| self.envelope.max_fee_per_gas())
    }
    /// What the sender pays per gas at `base_fee` (None when the fee cap is below it).
    pub fn effective_gas_price(&self, base_fee: u64) -> Option<u128> {
        let base = base_fee as u128;
        let cap = self.max_fee_per_gas();
        // Saturating is exact here: the result is capped by `cap`, itself a u128.
        (cap >= base).then(|| cap.min(base.saturating_add(self.max_priority_fee_per_gas())))
    }
    /// What the proposer earns per gas at `base_fee`.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        self.effective_gas_price(base_fee)
            .map(|p| p - base_fee as u128)
    }
    /// The most this transaction can cost its sender: `gas * maxFee + value`, the amount
    /// geth requires up front ("insufficient funds for gas * price + value"). Exact: a
    /// transaction whose cost exceeds 256 bits is never recovered ([`TxError::CostOverflow`]).
    pub fn max_cost(&self) -> U256 {
        self.max_cost
    }
}

/// The placeholder signature of a devnet transaction from an impersonated account
/// (docs/devnet.md): r = the sender's address (left-padded to 32 bytes), s = 1, yParity = 0.
/// It recovers to no key; putting the sender in r keeps the hashes of two otherwise identical
/// transactions from different impersonated senders apart.
pub fn impersonation_signature(sender: Address) -> alloy_primitives::Signature {
    alloy_primitives::Signature::new(U256::from_be_slice(sender.as_slice()), U256::from(1), false)
}

/// `gas * maxFee + value` in checked arithmetic (ruint's `*` and `+` wrap), or None when it
/// exceeds `2^256 - 1`.
fn checked_max_cost(tx: &TxEnvelope) -> Option<U256> {
    U256::from(tx.gas_limit())
        .checked_mul(U256::from(tx.max_fee_per_gas()))?
        .checked_add(tx.value())
}

/// Intrinsic gas under Prague: the larger of the classic intrinsic cost and the EIP-7623
/// calldata floor.
pub fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let (accounts, slots) = tx.access_list().map_or((0, 0), |list| {
        (
            list.len() as u64,
            list.iter().map(|item| item.storage_keys.len() as u64).sum(),
        )
    });
    let auths = tx.authorization_list().map_or(0, |list| list.len() as u64);
    let gas = calculate_initial_tx_gas(
        SpecId::PRAGUE,
        tx.input(),
        tx.kind().is_create(),
        accounts,
        slots,
        auths,
        None,
    );
    (gas.initial_regular_gas + gas.initial_state_gas).max(gas.floor_gas)
}
