//! `sol!` bindings of the `BandwidthChannels` interface, written from issue 5's ABI so the
//! client side does not depend on the contract's source. A test checks every selector and
//! event hash against the committed artifact once it exists.

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
