// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title BandwidthChannels
/// @notice Unidirectional payer -> payee payment channels in native BTT, for paying
///         bandwidth piece by piece. A payer opens a channel with a deposit and then pays
///         off-chain by signing EIP-712 vouchers for ever larger *cumulative* amounts; anyone
///         may settle the newest voucher at any time, which pays the payee the difference to
///         what was already claimed. The payer gets the unclaimed rest back either at once
///         (`cooperativeClose`, both parties sign) or after a settle window that starts with
///         `requestClose`, during which the payee (or a watcher) can still settle. So a payee
///         holding a voucher can always collect it, unlike a cheque vault whose issuer can
///         empty it at any time.
///
///         System contract: bttd's genesis runs this creation code and places the result at
///         0x0000000000000000000000000000000000001002; the settle-window bounds are
///         constructor arguments taken from the genesis (`config.bttd.channels`).
///
///         Storage is packed so that `open` writes two fresh slots and a settlement reads two
///         and writes one (see docs/payment-channels.md for the gas figures):
///         - the payer is folded into the channel id: `id = payer << 96 | nonce`, with a
///           global nonce, so ids never repeat and the payer needs no storage;
///         - slot 0: payee (160 bits) | settleWindow (32) | closesAt (64);
///         - slot 1: deposit (128) | claimed (128).
///         Every state change is written before any value leaves the contract
///         (checks-effects-interactions), so a payee or payer contract that re-enters on
///         receipt finds the channel already updated.
contract BandwidthChannels {
    // ---------------------------------------------------------------------------------------
    // Types, storage, constants
    // ---------------------------------------------------------------------------------------

    struct Channel {
        // slot 0
        address payee;
        uint32 settleWindow;
        /// 0 while open; once a close is requested (or done), the first timestamp at which
        /// settling is refused and withdrawing allowed.
        uint64 closesAt;
        // slot 1
        uint128 deposit;
        uint128 claimed;
    }

    /// Outcome of checking one voucher; every value but `Ok` is a reason to refuse it.
    enum SettleStatus {
        Ok,
        UnknownChannel,
        SettleWindowOver,
        StaleAmount,
        ExceedsDeposit,
        BadSignatureLength,
        SignatureHighS,
        SignatureBadV,
        WrongSigner
    }

    /// What a `settleBatch` owes, aggregated by payee: a memory table of (payee, owed) word
    /// pairs at `table`, `distinct` of them in order of first appearance; `last` is the entry
    /// of the previous paid item's payee (batches are often grouped by payee, so most items
    /// skip the search).
    struct Payouts {
        uint256 table;
        uint256 distinct;
        uint256 last;
    }

    mapping(bytes32 channelId => Channel) private _channels;
    /// The nonce of the next channel (starts at 1, so the slot is never fresh; a whole slot,
    /// so `open` updates it without masking).
    uint256 private _nextNonce;

    /// Bounds (seconds, inclusive) on the settle window `open` accepts.
    uint64 public immutable minSettleWindow;
    uint64 public immutable maxSettleWindow;

    /// keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount)"), a literal so the
    /// assembly of `_settle` can use it (the constructor checks it).
    bytes32 public constant VOUCHER_TYPEHASH = 0x5e172d4a19b08b5b7f0354399a080f05a28476f34f987f7cd87e69a4065d4ec0;
    bytes32 public constant CLOSE_TYPEHASH = keccak256("Close(bytes32 channelId,uint256 cumulativeAmount)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("BandwidthChannels");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1n / 2: signatures with a larger s are malleable twins and refused.
    /// The `Settled` event's topic, a literal for `_settle`'s assembly (checked likewise).
    bytes32 private constant SETTLED_TOPIC = 0xf8cd5951a4d275639396b7a7bbcf5eee708975d6b14cae09b50ff2a3a602e13f;
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ---------------------------------------------------------------------------------------
    // Events: one for every change
    // ---------------------------------------------------------------------------------------

    event ChannelOpened(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 deposit, uint64 settleWindow
    );
    /// `amount` was added by `from`; `deposit` is the new total.
    event ToppedUp(bytes32 indexed channelId, address indexed from, uint256 amount, uint256 deposit);
    /// The channel's claimed total rose to `claimed`; the payee was paid the difference to the
    /// previous `claimed` (0 for the first settlement).
    event Settled(bytes32 indexed channelId, uint256 claimed);
    /// Item `index` of a `settleBatch` was refused for `reason` and changed nothing.
    event SettleSkipped(bytes32 indexed channelId, uint256 index, SettleStatus reason);
    /// The payer asked to close; settling stays possible until `closesAt`.
    event CloseRequested(bytes32 indexed channelId, uint64 closesAt);
    /// Closed by both parties at `claimed`; `refunded` went back to the payer.
    event Closed(bytes32 indexed channelId, uint256 claimed, uint256 refunded);
    /// After the settle window, `refunded` (the unclaimed rest) went back to the payer.
    event Withdrawn(bytes32 indexed channelId, uint256 refunded);

    // ---------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------

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

    /// @param minSettleWindow_ shortest settle window `open` accepts (seconds, >= 1)
    /// @param maxSettleWindow_ longest settle window `open` accepts (seconds, < 2^32)
    constructor(uint64 minSettleWindow_, uint64 maxSettleWindow_) {
        if (minSettleWindow_ == 0 || minSettleWindow_ > maxSettleWindow_ || maxSettleWindow_ > type(uint32).max) {
            revert InvalidSettleWindowBounds(minSettleWindow_, maxSettleWindow_);
        }
        assert(VOUCHER_TYPEHASH == keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount)"));
        assert(SETTLED_TOPIC == Settled.selector);
        minSettleWindow = minSettleWindow_;
        maxSettleWindow = maxSettleWindow_;
        _nextNonce = 1;
    }

    // ---------------------------------------------------------------------------------------
    // Payer: open, top up, request a close
    // ---------------------------------------------------------------------------------------

    /// Opens a channel from `msg.sender` to `payee` funded with `msg.value` (may be 0 and
    /// topped up later). The id is `msg.sender << 96 | nonce`; it never repeats.
    function open(address payee, uint64 settleWindow) external payable returns (bytes32 channelId) {
        if (payee == address(0) || payee == address(this)) revert InvalidPayee(payee);
        if (settleWindow < minSettleWindow || settleWindow > maxSettleWindow) {
            revert SettleWindowOutOfBounds(settleWindow, minSettleWindow, maxSettleWindow);
        }
        if (msg.value > type(uint128).max) revert DepositTooLarge(msg.value);
        uint256 nonce = _nextNonce; // < 2^96: one per transaction, forever
        _nextNonce = nonce + 1;
        channelId = bytes32((uint256(uint160(msg.sender)) << 96) | nonce);
        // Both slots of a fresh channel written whole (Channel's layout): payee | window << 160
        // (closesAt 0), and deposit (claimed 0), skipped when zero.
        Channel storage c = _channels[channelId];
        assembly ("memory-safe") {
            sstore(c.slot, or(payee, shl(160, settleWindow)))
            if callvalue() { sstore(add(c.slot, 1), callvalue()) }
        }
        emit ChannelOpened(channelId, msg.sender, payee, msg.value, settleWindow);
    }

    /// Adds `msg.value` to the deposit. Anyone may add; whatever the payee does not claim is
    /// refunded to the payer. Refused once a close was requested.
    function topUp(bytes32 channelId) external payable {
        Channel storage c = _existing(channelId);
        uint64 closesAt = c.closesAt;
        if (closesAt != 0) revert CloseAlreadyRequested(channelId, closesAt);
        if (msg.value == 0) revert ZeroValue();
        uint256 deposit = uint256(c.deposit) + msg.value;
        if (deposit > type(uint128).max) revert DepositTooLarge(deposit);
        c.deposit = uint128(deposit);
        emit ToppedUp(channelId, msg.sender, msg.value, deposit);
    }

    /// Payer only: starts the settle window. Vouchers can be settled until
    /// `closesAt = block.timestamp + settleWindow`; after it, `withdraw` refunds the rest.
    function requestClose(bytes32 channelId) external {
        Channel storage c = _existing(channelId);
        address payer = _payerOf(channelId);
        if (msg.sender != payer) revert NotPayer(msg.sender, payer);
        uint64 closesAt = c.closesAt;
        if (closesAt != 0) revert CloseAlreadyRequested(channelId, closesAt);
        closesAt = uint64(block.timestamp) + c.settleWindow;
        c.closesAt = closesAt;
        emit CloseRequested(channelId, closesAt);
    }

    /// After `closesAt`: refunds the payer the unclaimed rest (anyone may trigger it; the
    /// money only ever goes to the payer). Afterwards `deposit == claimed`.
    function withdraw(bytes32 channelId) external {
        Channel storage c = _existing(channelId);
        uint64 closesAt = c.closesAt;
        if (closesAt == 0) revert CloseNotRequested(channelId);
        if (block.timestamp < closesAt) revert SettleWindowNotOver(channelId, closesAt);
        uint128 claimed = c.claimed;
        uint256 refund = c.deposit - claimed;
        if (refund == 0) revert NothingToWithdraw(channelId);
        c.deposit = claimed;
        emit Withdrawn(channelId, refund);
        _pay(_payerOf(channelId), refund);
    }

    // ---------------------------------------------------------------------------------------
    // Anyone: settle vouchers
    // ---------------------------------------------------------------------------------------

    /// Pays the payee `cumulativeAmount - claimed` for the payer's Voucher signature. Anyone
    /// may submit (the payee, a relayer, a watcher); the channel stays open.
    function settle(bytes32 channelId, uint256 cumulativeAmount, bytes calldata signature) external {
        uint256 sigOffset;
        assembly ("memory-safe") {
            sigOffset := signature.offset
        }
        (uint256 status, address payee, uint256 paid) =
            _settle(_domainSeparator(), channelId, cumulativeAmount, sigOffset, signature.length);
        if (status != 0) _refuse(SettleStatus(status), channelId, cumulativeAmount, signature);
        _pay(payee, paid);
    }

    /// Settles many vouchers in one transaction. An invalid item is skipped with
    /// `SettleSkipped` and changes nothing; the valid ones are paid with one transfer per
    /// payee, after every channel was updated. The three arrays must have equal lengths.
    function settleBatch(
        bytes32[] calldata channelIds,
        uint256[] calldata cumulativeAmounts,
        bytes[] calldata signatures
    ) external {
        uint256 n = channelIds.length;
        if (cumulativeAmounts.length != n || signatures.length != n) {
            revert LengthMismatch(n, cumulativeAmounts.length, signatures.length);
        }
        uint256 ids;
        uint256 amounts;
        uint256 sigs;
        assembly ("memory-safe") {
            ids := channelIds.offset
            amounts := cumulativeAmounts.offset
            sigs := signatures.offset
        }
        _payOut(_settleAll(n, ids, amounts, sigs));
    }

    /// Closes at once with both parties' consent: the payer's Voucher signature and the
    /// payee's Close signature over the same `(channelId, cumulativeAmount)`. Pays the payee
    /// `cumulativeAmount - claimed`, refunds the payer `deposit - cumulativeAmount`. Anyone
    /// may submit; refused once the settle window is over.
    function cooperativeClose(
        bytes32 channelId,
        uint256 cumulativeAmount,
        bytes calldata payerSignature,
        bytes calldata payeeSignature
    ) external {
        (address payee, uint256 deposit, uint256 claimed) = _closable(channelId, cumulativeAmount);
        bytes32 domain = _domainSeparator();
        _requireSigner(
            _typedHash(domain, VOUCHER_TYPEHASH, channelId, cumulativeAmount), payerSignature, _payerOf(channelId)
        );
        _requireSigner(_typedHash(domain, CLOSE_TYPEHASH, channelId, cumulativeAmount), payeeSignature, payee);

        Channel storage c = _channels[channelId];
        c.closesAt = uint64(block.timestamp == 0 ? 1 : block.timestamp);
        c.deposit = uint128(cumulativeAmount);
        c.claimed = uint128(cumulativeAmount);
        uint256 paid = cumulativeAmount - claimed;
        uint256 refund = deposit - cumulativeAmount;
        if (paid != 0) emit Settled(channelId, cumulativeAmount);
        emit Closed(channelId, cumulativeAmount, refund);
        if (paid != 0) _pay(payee, paid);
        if (refund != 0) _pay(_payerOf(channelId), refund);
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// The channel's state; all zero for an unknown id. `closesAt` is 0 while no close was
    /// requested. After a close completed, `deposit == claimed`.
    function channels(bytes32 channelId)
        external
        view
        returns (
            address payer,
            address payee,
            uint256 deposit,
            uint256 claimed,
            uint64 settleWindow,
            uint64 closesAt
        )
    {
        Channel storage c = _channels[channelId];
        payee = c.payee;
        if (payee != address(0)) payer = _payerOf(channelId);
        return (payer, payee, c.deposit, c.claimed, c.settleWindow, c.closesAt);
    }

    /// The EIP-712 domain separator vouchers are signed under (this chain, this address).
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// ERC-5267: the EIP-712 domain, for wallets and libraries that read it from the contract.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "BandwidthChannels", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    /// The loop of `settleBatch` over calldata arrays at `ids`, `amounts` and `sigs` (the
    /// offsets of the validated `bytes32[]`, `uint256[]` and `bytes[]` of length `n`).
    function _settleAll(uint256 n, uint256 ids, uint256 amounts, uint256 sigs)
        private
        returns (Payouts memory payouts)
    {
        bytes32 domain = _domainSeparator();
        payouts = _newPayouts(n);
        for (uint256 i; i < n; ++i) {
            bytes32 channelId;
            uint256 amount;
            uint256 sigOffset;
            uint256 sigLength;
            // Item i. A signature's offset is not bounds-checked: whatever bytes it points at
            // (zeros past the end of calldata) are just a signature that fails the checks.
            assembly ("memory-safe") {
                let word := shl(5, i)
                channelId := calldataload(add(ids, word))
                amount := calldataload(add(amounts, word))
                let sig := add(sigs, calldataload(add(sigs, word)))
                sigLength := calldataload(sig)
                sigOffset := add(sig, 0x20)
            }
            (uint256 status, address payee, uint256 paid) = _settle(domain, channelId, amount, sigOffset, sigLength);
            if (status != 0) {
                emit SettleSkipped(channelId, i, SettleStatus(status));
                continue;
            }
            // Most batches are grouped by payee: add to the previous item's entry when it is
            // the same payee, search the table otherwise.
            bool same;
            assembly ("memory-safe") {
                let entry := mload(add(payouts, 0x40))
                same := eq(mload(entry), payee)
                if same { mstore(add(entry, 0x20), add(mload(add(entry, 0x20)), paid)) }
            }
            if (!same) _credit(payouts, payee, paid);
        }
    }

    /// Checks one voucher (signature at calldata `sigOffset`, `sigLength` bytes) and, when
    /// valid, records it and emits `Settled`; returns the payee and what it is owed. Changes
    /// nothing unless the status is 0 (`SettleStatus.Ok`). Signature recovery runs last, so a
    /// bad batch item costs little. The hot path of every settlement, hence one assembly
    /// block; `_recover` and `_typedHash` are the same steps in Solidity-callable form.
    function _settle(bytes32 domain, bytes32 channelId, uint256 amount, uint256 sigOffset, uint256 sigLength)
        private
        returns (uint256 status, address payee, uint256 paid)
    {
        // One branch per phase on the happy path; the reason is worked out only on failure.
        // Status values are those of SettleStatus.
        assembly ("memory-safe") {
            for {} 1 {} {
                mstore(0x00, channelId)
                mstore(0x20, _channels.slot)
                let slot := keccak256(0x00, 0x40)
                let word0 := sload(slot) // payee | settleWindow << 160 | closesAt << 192
                let word1 := sload(add(slot, 1)) // deposit | claimed << 128
                payee := and(word0, 0xffffffffffffffffffffffffffffffffffffffff)
                paid := sub(amount, shr(128, word1)) // amount - claimed, if it is valid
                // Happy path in one test, with unsigned wrap-around doing the range checks:
                // - claimed < amount <= deposit  <=>  amount - claimed - 1 < deposit - claimed
                //   (claimed <= deposit always; false for an unknown channel: all zero);
                // - the window is not over: closesAt == 0 || now < closesAt  <=>
                //   now - 1 < closesAt - 1 (now >= 1);
                // - a 65-byte signature.
                if iszero(
                    and(
                        lt(sub(paid, 1), sub(and(word1, 0xffffffffffffffffffffffffffffffff), shr(128, word1))),
                        and(lt(sub(timestamp(), 1), sub(shr(192, word0), 1)), eq(sigLength, 65))
                    )
                ) {
                    paid := 0
                    status := 5 // BadSignatureLength, unless an earlier reason applies:
                    if gt(amount, and(word1, 0xffffffffffffffffffffffffffffffff)) { status := 4 } // ExceedsDeposit
                    if iszero(gt(amount, shr(128, word1))) { status := 3 } // StaleAmount
                    if iszero(or(iszero(shr(192, word0)), lt(timestamp(), shr(192, word0)))) { status := 2 } // SettleWindowOver
                    if iszero(payee) { status := 1 } // UnknownChannel
                    break
                }
                let m := mload(0x40)
                // ecrecover input at m: digest | v | r | s, r and s straight from calldata.
                calldatacopy(add(m, 0x40), sigOffset, 0x40)
                let v := byte(0, calldataload(add(sigOffset, 0x40)))
                if iszero(and(iszero(gt(mload(add(m, 0x60)), HALF_CURVE_ORDER)), or(eq(v, 27), eq(v, 28)))) {
                    paid := 0
                    status := 7 // SignatureBadV
                    if gt(mload(add(m, 0x60)), HALF_CURVE_ORDER) { status := 6 } // SignatureHighS
                    break
                }
                mstore(add(m, 0x20), v)
                // EIP-712 digest, built in the scratch space and the free-pointer word.
                mstore(0x00, VOUCHER_TYPEHASH)
                mstore(0x20, channelId)
                mstore(0x40, amount)
                mstore(0x40, keccak256(0x00, 0x60)) // structHash
                mstore(0x00, 0x1901)
                mstore(0x20, domain)
                mstore(m, keccak256(0x1e, 0x42))
                mstore(0x40, m) // restore the free memory pointer
                mstore(0x00, 0) // ecrecover returns nothing on failure: 0x00 stays 0
                pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
                if iszero(eq(mload(0x00), shr(96, channelId))) {
                    paid := 0
                    status := 8 // WrongSigner (the payer is the id's top 160 bits)
                    break
                }
                // claimed := amount (< 2^128, as it is <= deposit); deposit unchanged.
                sstore(add(slot, 1), or(and(word1, 0xffffffffffffffffffffffffffffffff), shl(128, amount)))
                mstore(0x00, amount)
                log2(0x00, 0x20, SETTLED_TOPIC, channelId)
                break
            }
        }
    }

    /// A payout table with room for `n` payees.
    function _newPayouts(uint256 n) private pure returns (Payouts memory p) {
        uint256 table;
        assembly ("memory-safe") {
            table := mload(0x40)
            mstore(0x40, add(table, mul(n, 0x40)))
            mstore(table, 0) // no payee yet: `last` points at an entry no payee (never 0) matches
        }
        p.table = table;
        p.last = table;
    }

    /// Adds `paid` to what `payee` is owed (a linear search over the distinct payees so far,
    /// skipped when the payee is the previous item's).
    function _credit(Payouts memory p, address payee, uint256 paid) private pure {
        assembly ("memory-safe") {
            let distinct := mload(add(p, 0x20))
            let entry := mload(add(p, 0x40))
            if or(iszero(distinct), iszero(eq(mload(entry), payee))) {
                let table := mload(p)
                let end := add(table, shl(6, distinct))
                entry := table
                for {} and(lt(entry, end), iszero(eq(mload(entry), payee))) {} { entry := add(entry, 0x40) }
                if eq(entry, end) {
                    mstore(entry, payee)
                    mstore(add(entry, 0x20), 0)
                    mstore(add(p, 0x20), add(distinct, 1))
                }
                mstore(add(p, 0x40), entry)
            }
            mstore(add(entry, 0x20), add(mload(add(entry, 0x20)), paid))
        }
    }

    /// One transfer per payee of what the batch owes it.
    function _payOut(Payouts memory p) private {
        uint256 end = p.table + p.distinct * 0x40;
        for (uint256 entry = p.table; entry < end; entry += 0x40) {
            address payee;
            uint256 owed;
            assembly ("memory-safe") {
                payee := mload(entry)
                owed := mload(add(entry, 0x20))
            }
            _pay(payee, owed);
        }
    }

    /// Reverts with the error that explains `status` for a single `settle`.
    function _refuse(SettleStatus status, bytes32 channelId, uint256 cumulativeAmount, bytes calldata signature)
        private
        view
    {
        Channel storage c = _channels[channelId];
        if (status == SettleStatus.UnknownChannel) revert UnknownChannel(channelId);
        if (status == SettleStatus.SettleWindowOver) revert SettleWindowOver(channelId, c.closesAt);
        if (status == SettleStatus.StaleAmount) revert StaleAmount(cumulativeAmount, c.claimed);
        if (status == SettleStatus.ExceedsDeposit) revert ExceedsDeposit(cumulativeAmount, c.deposit);
        _requireSigner(
            _typedHash(_domainSeparator(), VOUCHER_TYPEHASH, channelId, cumulativeAmount),
            signature,
            _payerOf(channelId)
        );
        revert WrongSigner(address(0), _payerOf(channelId)); // unreachable: the check above reverts
    }

    /// Reverts unless `signature` is a strict signature of `digest` by `expected`.
    function _requireSigner(bytes32 digest, bytes calldata signature, address expected) private view {
        (SettleStatus status, address signer) = _recover(digest, signature);
        if (status == SettleStatus.BadSignatureLength) revert BadSignatureLength(signature.length);
        if (status == SettleStatus.SignatureHighS) revert SignatureHighS();
        if (status == SettleStatus.SignatureBadV) revert SignatureBadV(uint8(signature[64]));
        if (signer != expected) revert WrongSigner(signer, expected);
    }

    /// Recovers the signer of a 65-byte `r ‖ s ‖ v` signature. Refuses other lengths, s in the
    /// upper half of the curve order and v other than 27/28 before recovering; an
    /// unrecoverable signature yields signer 0, which matches no payer or payee.
    function _recover(bytes32 digest, bytes calldata signature)
        private
        view
        returns (SettleStatus status, address signer)
    {
        if (signature.length != 65) return (SettleStatus.BadSignatureLength, address(0));
        bytes32 r;
        uint256 s;
        uint256 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        if (s > HALF_CURVE_ORDER) return (SettleStatus.SignatureHighS, address(0));
        if (v != 27 && v != 28) return (SettleStatus.SignatureBadV, address(0));
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, digest)
            mstore(add(m, 0x20), v)
            mstore(add(m, 0x40), r)
            mstore(add(m, 0x60), s)
            mstore(0x00, 0)
            // ecrecover precompile; on failure it returns nothing and 0x00 stays zero.
            pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
            signer := mload(0x00)
        }
        return (SettleStatus.Ok, signer);
    }

    /// EIP-712: keccak256("\x19\x01" ‖ domainSeparator ‖ keccak256(typeHash ‖ channelId ‖ amount)).
    function _typedHash(bytes32 domain, bytes32 typeHash, bytes32 channelId, uint256 amount)
        private
        pure
        returns (bytes32 digest)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            mstore(add(m, 0x20), channelId)
            mstore(add(m, 0x40), amount)
            let structHash := keccak256(m, 0x60)
            mstore(m, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x02), domain)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    /// Computed on every call rather than cached: genesis runs the constructor at another
    /// address (and chain id) than the one the contract ends up at.
    function _domainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _existing(bytes32 channelId) private view returns (Channel storage c) {
        c = _channels[channelId];
        if (c.payee == address(0)) revert UnknownChannel(channelId);
    }

    /// The checks of `cooperativeClose` before its signatures: the channel exists, its settle
    /// window is not over, and `claimed <= cumulativeAmount <= deposit`.
    function _closable(bytes32 channelId, uint256 cumulativeAmount)
        private
        view
        returns (address payee, uint256 deposit, uint256 claimed)
    {
        Channel storage c = _existing(channelId);
        uint64 closesAt = c.closesAt;
        if (closesAt != 0 && block.timestamp >= closesAt) revert SettleWindowOver(channelId, closesAt);
        (payee, deposit, claimed) = (c.payee, c.deposit, c.claimed);
        if (cumulativeAmount < claimed) revert StaleAmount(cumulativeAmount, claimed);
        if (cumulativeAmount > deposit) revert ExceedsDeposit(cumulativeAmount, deposit);
    }

    function _payerOf(bytes32 channelId) private pure returns (address) {
        return address(uint160(uint256(channelId) >> 96));
    }

    /// Sends `amount` wei with all gas and no return-data copy (a callee cannot make us pay
    /// for a huge return). State is final before this runs.
    function _pay(address to, uint256 amount) private {
        bool ok;
        assembly ("memory-safe") {
            ok := call(gas(), to, amount, 0, 0, 0, 0)
        }
        if (!ok) revert TransferFailed(to, amount);
    }
}
