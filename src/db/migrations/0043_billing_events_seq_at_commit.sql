-- An event's seq, the order of the event log (GET /v1/billing/events pages newest first by it), is
-- given when its transaction commits instead of when the row is inserted. Taken at insert, it was
-- not commit order: a transaction that wrote an event, then worked on, committed after one that
-- wrote its event later, and its event landed below one a polling client had already read; a
-- client that reads until the first event it knows never saw it. While its transaction runs, an
-- event has a provisional seq, the negative of a number from the sequence below; the deferred
-- trigger billing_events_seq_at_commit (functions/events.sql) gives it its final seq from the same
-- sequence at the commit, under a per-organization lock held until the commit is done. Events
-- written before keep theirs, and the sequence goes on after them, so cursors handed out before
-- still mean the same place.
alter table billing_events alter column seq drop identity;
create sequence billing_events_commit_seq;
select setval('billing_events_commit_seq', coalesce((select max(seq) from billing_events), 0) + 1, false);
alter table billing_events alter column seq set default -nextval('billing_events_commit_seq');
