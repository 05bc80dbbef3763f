// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {DepositForwarder} from "./DepositForwarder.sol";

/// @title Deposit factory
/// @notice Gives every organization a deterministic deposit address without a private key per
///         address: the address is where `DepositForwarder` lands when this factory deploys it
///         with CREATE2 and the organization's salt. Deposits can be sent there before anything
///         is deployed; `sweep` deploys the forwarder on first use and moves the balance to the
///         treasury.
/// @dev Only this factory can ever put code at a predicted address (CREATE2 addresses are bound
///      to the deployer), and the forwarder obeys only this factory, so the owner's key is the
///      single authority over every deposit address. Changing the forwarder's code changes every
///      predicted address: treat its bytecode as frozen once addresses have been handed out.
contract DepositFactory is Ownable {
    /// @notice Where swept tokens go.
    address public treasury;

    /// @dev keccak256 of the forwarder's init code, computed once so `predictAddress` is cheap.
    bytes32 private immutable forwarderCodeHash;

    event ForwarderDeployed(bytes32 indexed salt, address indexed forwarder);
    event Swept(bytes32 indexed salt, address indexed forwarder, address indexed token, uint256 amount);
    event TreasuryChanged(address indexed previousTreasury, address indexed newTreasury);

    /// @dev A zero treasury would burn every sweep, so it is refused outright.
    error ZeroTreasury();

    constructor(address treasury_, address initialOwner) Ownable(initialOwner) {
        forwarderCodeHash = keccak256(type(DepositForwarder).creationCode);
        _setTreasury(treasury_);
    }

    /// @notice The deposit address for `salt`: where the forwarder is (or will be) deployed.
    ///         Valid before deployment, so it can be handed out as soon as the salt exists.
    function predictAddress(bytes32 salt) public view returns (address) {
        return Create2.computeAddress(salt, forwarderCodeHash);
    }

    /// @notice Moves the whole `token` balance held at the deposit address for `salt` to the
    ///         treasury, deploying the forwarder there first if it has no code yet.
    /// @dev Emits `ForwarderDeployed` only on the sweep that deploys, then always `Swept`.
    ///      An empty address is not an error: it is deployed if needed, nothing moves, and
    ///      `Swept` is emitted with amount 0 (so callers may sweep speculatively).
    ///      `token` may be any ERC-20, not only HUSD: this is how tokens sent to a deposit
    ///      address by mistake are recovered. Crediting is decided off chain from HUSD
    ///      `Transfer` logs, never from this event, so sweeping a foreign token credits nothing.
    /// @return amount The number of base units moved to the treasury.
    function sweep(bytes32 salt, address token) external onlyOwner returns (uint256 amount) {
        address forwarder = predictAddress(salt);
        if (forwarder.code.length == 0) {
            address deployed = address(new DepositForwarder{salt: salt}());
            // Cannot differ unless the init code hash is wrong; fail loudly rather than sweep elsewhere.
            assert(deployed == forwarder);
            emit ForwarderDeployed(salt, forwarder);
        }
        amount = DepositForwarder(forwarder).sweep(IERC20(token), treasury);
        emit Swept(salt, forwarder, token, amount);
    }

    /// @notice Redirects future sweeps; tokens already swept stay where they went.
    function setTreasury(address newTreasury) external onlyOwner {
        _setTreasury(newTreasury);
    }

    function _setTreasury(address newTreasury) private {
        if (newTreasury == address(0)) revert ZeroTreasury();
        emit TreasuryChanged(treasury, newTreasury);
        treasury = newTreasury;
    }
}
