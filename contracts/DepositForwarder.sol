// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Deposit forwarder
/// @notice Lives at an organization's deposit address. Tokens arrive here (usually long before
///         this code is deployed: the address is a CREATE2 prediction), and the factory later
///         deploys it and moves the balance to the treasury.
/// @dev Deliberately tiny and stateless: it is deployed once per organization, so every byte
///      is paid again for each org, and with no constructor arguments its init code is the same
///      for all of them, which is what makes the address depend on the salt alone.
///      It has no receive/fallback: native currency is not a deposit method, so plain ETH sent
///      after deployment bounces; ETH sent before deployment cannot be recovered.
///      Its init code fixes every deposit address, so the compiler is pinned exactly and the
///      build leaves the source-metadata hash out of bytecode (an edited comment must not move
///      addresses).
contract DepositForwarder {
    using SafeERC20 for IERC20;

    /// @dev The factory that deployed this forwarder is the only caller it obeys; immutable
    ///      so that authority cannot be changed or spent on a storage read.
    address private immutable factory;

    error NotFactory();

    constructor() {
        factory = msg.sender;
    }

    /// @notice Transfers this forwarder's entire `token` balance to `to` and returns the amount.
    /// @dev A zero balance transfers nothing (some tokens revert on zero-value transfers) and
    ///      returns 0, so sweeping an empty address is harmless.
    function sweep(IERC20 token, address to) external returns (uint256 amount) {
        if (msg.sender != factory) revert NotFactory();
        amount = token.balanceOf(address(this));
        if (amount != 0) token.safeTransfer(to, amount);
    }
}
