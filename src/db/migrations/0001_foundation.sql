-- Shared vocabulary for every later table.
-- Money in the ledger: integer nano-USD (1e-9 USD). Never a float.
create domain nano_usd as bigint;
-- Token amounts kept exactly in base units: an ERC-20 uint256 has at most 78 digits.
create domain token_base_units as numeric(78, 0) check (value >= 0);
