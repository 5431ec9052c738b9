// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title ReentrantPayee (test only, never deployed by bttd)
/// @notice A payee contract that, on every payment it receives, re-enters BandwidthChannels
///         with the voucher it was just paid for (through `settle` and `settleBatch`), to
///         prove that checks-effects-interactions leaves nothing more to take. It counts its
///         re-entry attempts (so a test knows they happened) and what each one paid.
contract ReentrantPayee {
    address public immutable channels;

    bytes32 public channelId;
    uint256 public cumulativeAmount;
    bytes public signature;
    /// Re-entries to try per armed voucher (each receipt may start more, up to this total).
    uint256 public maxAttempts;

    uint256 public attempts;
    uint256 public settleReverts;
    uint256 public receipts;
    uint256 public received;

    constructor(address channels_) {
        channels = channels_;
    }

    function arm(bytes32 channelId_, uint256 cumulativeAmount_, bytes calldata signature_, uint256 maxAttempts_)
        external
    {
        channelId = channelId_;
        cumulativeAmount = cumulativeAmount_;
        signature = signature_;
        maxAttempts = maxAttempts_;
        attempts = 0;
    }

    receive() external payable {
        receipts += 1;
        received += msg.value;
        if (attempts >= maxAttempts) return;
        attempts += 1;
        (bool ok,) = channels.call(
            abi.encodeWithSignature("settle(bytes32,uint256,bytes)", channelId, cumulativeAmount, signature)
        );
        if (!ok) settleReverts += 1;
        bytes32[] memory ids = new bytes32[](1);
        uint256[] memory amounts = new uint256[](1);
        bytes[] memory sigs = new bytes[](1);
        ids[0] = channelId;
        amounts[0] = cumulativeAmount;
        sigs[0] = signature;
        (ok,) = channels.call(abi.encodeWithSignature("settleBatch(bytes32[],uint256[],bytes[])", ids, amounts, sigs));
        require(ok, "re-entered settleBatch reverted");
    }
}
