// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title ReentrantStaker (test only, never deployed by bttd)
/// @notice A delegator contract that, on every payment from StakeManager, tries to re-enter
///         `claimRewards` and `withdrawUnbonded`, to prove that neither pays twice. It counts
///         receipts, re-entry attempts and how many of them reverted.
contract ReentrantStaker {
    address public immutable stakeManager;
    address public validator;
    uint256 public receipts;
    uint256 public received;
    uint256 public attempts;
    uint256 public reentryReverts;

    constructor(address stakeManager_) {
        stakeManager = stakeManager_;
    }

    function delegate(address validator_) external payable {
        validator = validator_;
        (bool ok, bytes memory ret) = stakeManager.call{value: msg.value}(abi.encodeWithSignature("delegate(address)", validator_));
        _bubble(ok, ret);
    }

    function undelegate(uint256 amount) external {
        (bool ok, bytes memory ret) =
            stakeManager.call(abi.encodeWithSignature("undelegate(address,uint256)", validator, amount));
        _bubble(ok, ret);
    }

    function claim() external {
        (bool ok, bytes memory ret) = stakeManager.call(abi.encodeWithSignature("claimRewards(address)", validator));
        _bubble(ok, ret);
    }

    function withdraw() external {
        (bool ok, bytes memory ret) = stakeManager.call(abi.encodeWithSignature("withdrawUnbonded()"));
        _bubble(ok, ret);
    }

    receive() external payable {
        receipts += 1;
        received += msg.value;
        if (msg.sender != stakeManager || attempts >= 4) return;
        attempts += 2;
        (bool ok,) = stakeManager.call(abi.encodeWithSignature("claimRewards(address)", validator));
        if (!ok) reentryReverts += 1;
        (ok,) = stakeManager.call(abi.encodeWithSignature("withdrawUnbonded()"));
        if (!ok) reentryReverts += 1;
    }

    function _bubble(bool ok, bytes memory ret) private pure {
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}
