// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title TestToken
/// @notice A minimal, self-contained ERC-20 used by bttd's end-to-end tests.
/// @dev Deliberately mixes the two revert styles clients must handle:
///      - `require(cond, "string")`  -> `Error(string)` revert data (selector 0x08c379a0)
///      - custom errors with args   -> `InsufficientAllowance(...)`, `AlwaysFails(...)`
///      so tests can check both decoded reason strings and ABI-decoded custom-error data.
contract TestToken {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;

    mapping(address account => uint256) public balanceOf;
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice `transferFrom` asked for more than the spender's allowance.
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    /// @notice Raised unconditionally by `alwaysRevert`, echoing its inputs.
    error AlwaysFails(address caller, uint256 code, string why);

    constructor(string memory name_, string memory symbol_, uint256 initialSupply) {
        name = name_;
        symbol = symbol_;
        _mint(msg.sender, initialSupply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        require(spender != address(0), "ERC20: approve to the zero address");
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 current = allowance[from][msg.sender];
        if (current != type(uint256).max) {
            if (current < value) revert InsufficientAllowance(msg.sender, current, value);
            unchecked {
                allowance[from][msg.sender] = current - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    /// @notice Always reverts with `AlwaysFails(msg.sender, code, why)`.
    function alwaysRevert(uint256 code, string calldata why) external view {
        revert AlwaysFails(msg.sender, code, why);
    }

    function _transfer(address from, address to, uint256 value) internal {
        require(to != address(0), "ERC20: transfer to the zero address");
        uint256 bal = balanceOf[from];
        require(bal >= value, "ERC20: insufficient balance");
        unchecked {
            balanceOf[from] = bal - value;
            balanceOf[to] += value; // cannot overflow: sum of balances == totalSupply
        }
        emit Transfer(from, to, value);
    }

    function _mint(address to, uint256 value) internal {
        require(to != address(0), "ERC20: mint to the zero address");
        totalSupply += value;
        unchecked {
            balanceOf[to] += value;
        }
        emit Transfer(address(0), to, value);
    }
}
