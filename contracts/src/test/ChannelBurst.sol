// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

interface IChannelsForBurst {
    function open(address payee, uint64 settleWindow) external payable returns (bytes32 channelId);
    function requestClose(bytes32 channelId) external;
}

/// @title ChannelBurst (test only, never deployed by bttd)
/// @notice A payer that is a contract: opens many zero-deposit channels and requests their
///         close in a few transactions, so a test can put 10,000+ `CloseRequested` logs on
///         chain in a burst (tests/e2e/watchtower.rs). `burn` spends all the gas it is given,
///         for block-space spam.
contract ChannelBurst {
    IChannelsForBurst private constant CHANNELS = IChannelsForBurst(0x0000000000000000000000000000000000001002);

    /// Channel nonces opened by one `openMany`: the contract's nonces are global, and nothing
    /// else runs inside one transaction, so they are consecutive.
    struct Run {
        uint128 first;
        uint128 count;
    }

    Run[] public runs;
    uint256 public opened;
    uint256 public closed;
    /// Next channel to close: run index and offset in it.
    uint256 private _run;
    uint256 private _offset;

    /// Opens `n` zero-deposit channels to `payee`.
    function openMany(address payee, uint64 settleWindow, uint256 n) external {
        require(n > 0, "n");
        uint256 first = uint96(uint256(CHANNELS.open(payee, settleWindow)));
        uint256 last = first;
        for (uint256 i = 1; i < n; ++i) {
            last = uint96(uint256(CHANNELS.open(payee, settleWindow)));
        }
        require(last == first + n - 1, "nonces not consecutive");
        runs.push(Run(uint128(first), uint128(n)));
        opened += n;
    }

    /// Requests the close of the next `max` channels not closed yet (fewer at the end).
    function closeNext(uint256 max) external {
        uint256 run = _run;
        uint256 offset = _offset;
        uint256 done;
        uint256 prefix = uint256(uint160(address(this))) << 96;
        while (done < max && run < runs.length) {
            Run memory r = runs[run];
            CHANNELS.requestClose(bytes32(prefix | (uint256(r.first) + offset)));
            ++done;
            if (++offset == r.count) {
                ++run;
                offset = 0;
            }
        }
        (_run, _offset) = (run, offset);
        closed += done;
    }

    /// Loops until out of gas: a transaction calling it uses its whole gas limit.
    function burn() external pure {
        assembly {
            for {} 1 {} {}
        }
    }
}
