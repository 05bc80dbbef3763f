-- Every metering batch updates each of its organizations' credits accounts up to three times
-- (the balance by the ledger's trigger, the reserved amount by the holds' triggers on insert and
-- on close). Neither column is indexed, so each update can stay on its page as a heap-only
-- tuple (no new entries in the account indexes) when the page has room: half of each page is
-- kept free for that. PostgreSQL CPU per pair in bench/metering-pg.ts (1,000 orgs, calls of 16
-- pairs, three runs each, alternating): 542-573 µs at the default 100, 410-451 µs at 50
-- (bench/RESULTS-metering.md, 2026-12-02). Pages written from now on keep the space; an existing
-- table's full pages get it as their rows move, or at once with `vacuum full billing.ledger_accounts`
-- in a quiet window.
alter table ledger_accounts set (fillfactor = 50);
