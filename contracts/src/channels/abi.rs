//! `sol!` bindings of the `BandwidthChannels` interface, written from issue 5's ABI (and the
//! contract's events and errors) so the client side reads as the issue specifies it; a test checks every
//! selector and event topic against the committed artifact.

alloy_sol_types::sol! {
    /// The bandwidth payment channel contract (issue 5).
    #[sol(all_derives)]
    interface IBandwidthChannels {
        /// A new channel; ids never repeat.
        event ChannelOpened(
            bytes32 indexed channelId,
            address indexed payer,
            address indexed payee,
            uint256 deposit,
            uint64 settleWindow
        );

        /// `amount` was added by `from`; `deposit` is the new total.
        event ToppedUp(bytes32 indexed channelId, address indexed from, uint256 amount, uint256 deposit);
        /// The channel's claimed total rose to `claimed`.
        event Settled(bytes32 indexed channelId, uint256 claimed);
        /// Item `index` of a `settleBatch` was refused for `reason` and changed nothing.
        event SettleSkipped(bytes32 indexed channelId, uint256 index, uint8 reason);
        /// The payer asked to close; settling stays possible until `closesAt`.
        event CloseRequested(bytes32 indexed channelId, uint64 closesAt);
        /// Closed by both parties at `claimed`; `refunded` went back to the payer.
        event Closed(bytes32 indexed channelId, uint256 claimed, uint256 refunded);
        /// After the settle window, `refunded` went back to the payer.
        event Withdrawn(bytes32 indexed channelId, uint256 refunded);

        error InvalidSettleWindowBounds(uint64 minSettleWindow, uint64 maxSettleWindow);
        error SettleWindowOutOfBounds(uint64 settleWindow, uint64 minSettleWindow, uint64 maxSettleWindow);
        error InvalidPayee(address payee);
        error DepositTooLarge(uint256 deposit);
        error ZeroValue();
        error UnknownChannel(bytes32 channelId);
        error NotPayer(address caller, address payer);
        error CloseAlreadyRequested(bytes32 channelId, uint64 closesAt);
        error CloseNotRequested(bytes32 channelId);
        error SettleWindowOver(bytes32 channelId, uint64 closesAt);
        error SettleWindowNotOver(bytes32 channelId, uint64 closesAt);
        error StaleAmount(uint256 cumulativeAmount, uint256 claimed);
        error ExceedsDeposit(uint256 cumulativeAmount, uint256 deposit);
        error BadSignatureLength(uint256 length);
        error SignatureHighS();
        error SignatureBadV(uint8 v);
        error WrongSigner(address signer, address expected);
        error NothingToWithdraw(bytes32 channelId);
        error LengthMismatch(uint256 channelIds, uint256 cumulativeAmounts, uint256 signatures);
        error TransferFailed(address to, uint256 amount);

        /// Opens a channel from `msg.sender` to `payee`, funded with `msg.value`.
        function open(address payee, uint64 settleWindow) external payable returns (bytes32 channelId);
        /// Adds `msg.value` to the deposit; refused once a close was requested.
        function topUp(bytes32 channelId) external payable;
        /// Pays the payee `cumulativeAmount - claimed`; anyone may submit.
        function settle(bytes32 channelId, uint256 cumulativeAmount, bytes signature) external;
        /// Settles many vouchers; invalid items are skipped with an event.
        function settleBatch(
            bytes32[] channelIds,
            uint256[] cumulativeAmounts,
            bytes[] signatures
        ) external;
        /// Pays the payee, refunds the payer the rest and closes at once.
        function cooperativeClose(
            bytes32 channelId,
            uint256 cumulativeAmount,
            bytes payerSignature,
            bytes payeeSignature
        ) external;
        /// Payer only: settling stays open until `closesAt = block.timestamp + settleWindow`.
        function requestClose(bytes32 channelId) external;
        /// After `closesAt`: refunds the payer the unclaimed rest.
        function withdraw(bytes32 channelId) external;
        /// The channel's state.
        function channels(bytes32 channelId) external view returns (
            address payer,
            address payee,
            uint256 deposit,
            uint256 claimed,
            uint64 settleWindow,
            uint64 closesAt
        );
    }
}

#[cfg(test)]
mod tests {
    use super::IBandwidthChannels as I;
    use crate::BandwidthChannels as C;
    use alloy_primitives::{Address, B256, U256};
    use alloy_sol_types::{SolCall, SolError, SolEvent};

    /// Every function of the interface is the contract's, selector for selector.
    #[test]
    fn functions_match_the_artifact() {
        let pairs = [
            (I::openCall::SIGNATURE, C::openCall::SIGNATURE),
            (I::topUpCall::SIGNATURE, C::topUpCall::SIGNATURE),
            (I::settleCall::SIGNATURE, C::settleCall::SIGNATURE),
            (I::settleBatchCall::SIGNATURE, C::settleBatchCall::SIGNATURE),
            (
                I::cooperativeCloseCall::SIGNATURE,
                C::cooperativeCloseCall::SIGNATURE,
            ),
            (
                I::requestCloseCall::SIGNATURE,
                C::requestCloseCall::SIGNATURE,
            ),
            (I::withdrawCall::SIGNATURE, C::withdrawCall::SIGNATURE),
            (I::channelsCall::SIGNATURE, C::channelsCall::SIGNATURE),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
        // The getter's answer decodes with our types.
        let ret = C::channelsCall::abi_encode_returns(&C::channelsReturn {
            payer: Address::repeat_byte(1),
            payee: Address::repeat_byte(2),
            deposit: U256::from(3),
            claimed: U256::from(4),
            settleWindow: 5,
            closesAt: 6,
        });
        let r = I::channelsCall::abi_decode_returns(&ret).unwrap();
        assert_eq!(
            (
                r.payer,
                r.payee,
                r.deposit,
                r.claimed,
                r.settleWindow,
                r.closesAt
            ),
            (
                Address::repeat_byte(1),
                Address::repeat_byte(2),
                U256::from(3),
                U256::from(4),
                5,
                6
            )
        );
    }

    /// Events: same topics, and the contract's encoding (indexed fields included) decodes
    /// with our bindings.
    #[test]
    fn events_match_the_artifact() {
        let id = B256::repeat_byte(9);
        let opened = C::ChannelOpened {
            channelId: id,
            payer: Address::repeat_byte(1),
            payee: Address::repeat_byte(2),
            deposit: U256::from(7),
            settleWindow: 60,
        }
        .encode_log_data();
        let o = I::ChannelOpened::decode_log_data(&opened).unwrap();
        assert_eq!(
            (o.channelId, o.payer, o.payee),
            (id, Address::repeat_byte(1), Address::repeat_byte(2))
        );
        let close = C::CloseRequested {
            channelId: id,
            closesAt: 77,
        }
        .encode_log_data();
        let c = I::CloseRequested::decode_log_data(&close).unwrap();
        assert_eq!((c.channelId, c.closesAt), (id, 77));
        assert_eq!(I::ToppedUp::SIGNATURE_HASH, C::ToppedUp::SIGNATURE_HASH);
        assert_eq!(I::Settled::SIGNATURE_HASH, C::Settled::SIGNATURE_HASH);
        assert_eq!(
            I::SettleSkipped::SIGNATURE_HASH,
            C::SettleSkipped::SIGNATURE_HASH
        );
        assert_eq!(I::Closed::SIGNATURE_HASH, C::Closed::SIGNATURE_HASH);
        assert_eq!(I::Withdrawn::SIGNATURE_HASH, C::Withdrawn::SIGNATURE_HASH);
    }

    #[test]
    fn errors_match_the_artifact() {
        let pairs = [
            (I::UnknownChannel::SELECTOR, C::UnknownChannel::SELECTOR),
            (I::NotPayer::SELECTOR, C::NotPayer::SELECTOR),
            (
                I::CloseAlreadyRequested::SELECTOR,
                C::CloseAlreadyRequested::SELECTOR,
            ),
            (
                I::CloseNotRequested::SELECTOR,
                C::CloseNotRequested::SELECTOR,
            ),
            (I::SettleWindowOver::SELECTOR, C::SettleWindowOver::SELECTOR),
            (
                I::SettleWindowNotOver::SELECTOR,
                C::SettleWindowNotOver::SELECTOR,
            ),
            (I::StaleAmount::SELECTOR, C::StaleAmount::SELECTOR),
            (I::ExceedsDeposit::SELECTOR, C::ExceedsDeposit::SELECTOR),
            (
                I::BadSignatureLength::SELECTOR,
                C::BadSignatureLength::SELECTOR,
            ),
            (I::SignatureHighS::SELECTOR, C::SignatureHighS::SELECTOR),
            (I::SignatureBadV::SELECTOR, C::SignatureBadV::SELECTOR),
            (I::WrongSigner::SELECTOR, C::WrongSigner::SELECTOR),
            (
                I::NothingToWithdraw::SELECTOR,
                C::NothingToWithdraw::SELECTOR,
            ),
            (I::LengthMismatch::SELECTOR, C::LengthMismatch::SELECTOR),
            (I::TransferFailed::SELECTOR, C::TransferFailed::SELECTOR),
            (I::ZeroValue::SELECTOR, C::ZeroValue::SELECTOR),
            (I::InvalidPayee::SELECTOR, C::InvalidPayee::SELECTOR),
            (I::DepositTooLarge::SELECTOR, C::DepositTooLarge::SELECTOR),
            (
                I::SettleWindowOutOfBounds::SELECTOR,
                C::SettleWindowOutOfBounds::SELECTOR,
            ),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
    }
}
