-- What each dispute disputed, beside what it holds (reversed_nano_usd). A dispute that opened
-- while another held the whole payment took nothing; once the other is won, the money it frees
-- goes to the disputes still open or lost that hold less than they disputed, before the org gets
-- any back (closeDispute, src/billing/payments/reverse-card-topup.ts). Rows from before this
-- column hold what they disputed or all there was: null counts as nothing more to take.
alter table card_disputes add column disputed_nano_usd nano_usd check (disputed_nano_usd >= 0);
