// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title Hanzo USD (local stand-in)
/// @notice The HUSD that local chains and tests deploy in place of the mainnet contract
///         (0xe9e32EF8aaECB68794Da3E1E9191b0a64CeC2c83). Billing only relies on ERC-20
///         `Transfer` events and 18 decimals, so a plain OpenZeppelin token is a faithful
///         double; permit is included so wallet flows (EIP-2612) can be exercised locally.
/// @dev Minting is owner-only because tests and `npm run dev` fund accounts from one deployer;
///      nothing here is meant for a production deployment.
contract HUSD is ERC20, ERC20Permit, Ownable {
    constructor(address initialOwner) ERC20("Hanzo USD", "HUSD") ERC20Permit("Hanzo USD") Ownable(initialOwner) {}

    /// @notice Creates `amount` base units (18 decimals) for `to`.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
