-- The deposit audit re-reads recent deposits taken away (orphaned, reversed) whose block is
-- canonical again (a reorg that flipped back); this finds them by block as the credited ones are.
create index husd_deposits_taken_away_block on husd_deposits (chain_id, block_number)
  where state in ('orphaned', 'reversed');
