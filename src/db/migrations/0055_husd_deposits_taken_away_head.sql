-- The head of the node's view that took a deposit away (orphaned it, or reversed its credit): a
-- deposit is seen again in the very block it was taken away in only from a view past that head
-- (src/billing/deposits/lifecycle.ts, reviveDeposit). A node behind the reorg, still on the old
-- fork, shows that block as canonical; without this it re-credited a deposit whose transaction the
-- chain had dropped. Null for deposits taken away before this column: those revive only elsewhere.
alter table husd_deposits add column taken_away_head bigint;
