-- A fact version may come back. A row edited A -> B -> A in place (last_updated untouched) is
-- three observations; with versions unique on (id, last_updated, content_hash, is_deleted) the
-- return to A could not be recorded, and the current view kept showing B. A version is now
-- recorded whenever it differs from the latest one recorded for its id (the load checks that,
-- under the warehouse lock), so history is the sequence of changes the pipeline observed.
-- Idempotency does not rest on this constraint: a batch is loaded once (the ledger), and an
-- unchanged row is never captured twice (the extract diffs against its state).

ALTER TABLE fact_sales_order DROP CONSTRAINT fact_sales_order_version_key;
ALTER TABLE fact_purchase_order DROP CONSTRAINT fact_purchase_order_version_key;
ALTER TABLE fact_payment DROP CONSTRAINT fact_payment_version_key;

-- The latest version of an id: what every load compares incoming rows with.
CREATE INDEX fact_sales_order_latest ON fact_sales_order (sales_order_id, sales_record_id);
CREATE INDEX fact_purchase_order_latest ON fact_purchase_order (purchase_order_id, purchase_record_id);
CREATE INDEX fact_payment_latest ON fact_payment (payment_id, payment_record_id);
