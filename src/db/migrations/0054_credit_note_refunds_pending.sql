-- The maintenance sweep asks again for credit notes' card refunds left pending (a lost answer that
-- nobody retried), every few seconds: this finds them without reading every refund ever made.
create index credit_note_refunds_pending on credit_note_refunds (updated_at) where status = 'pending';
