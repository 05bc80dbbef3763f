-- Top-ups used to store every HUSD transfer of the submitted transaction, including transfers to
-- addresses that were no organization's (state 'rejected', reason 'unknown_address: …', no org).
-- Such rows move no money and anyone could add them without bound (one transaction can carry
-- thousands of transfers); worse, a row keeps the scan, which records only transfers it has no
-- deposit for, from ever crediting that transfer once its address becomes an org's (an org's
-- CREATE2 address can receive HUSD before the org first asks for it). Top-ups no longer write
-- them (src/billing/deposits/topup.ts); the ones written before go, so the scan finds each again
-- if its address is, or becomes, an org's.
delete from husd_deposits
where state = 'rejected' and org_id is null and reason like 'unknown\_address:%';
