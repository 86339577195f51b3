-- Fact history and idempotent loading.
--
-- Every fact row is one observed version of a source row. It records the content hash of the
-- source row, the processed batch and its sequence (capture order across batches), its position
-- inside the batch (capture_seq) and whether it is a deletion marker (the id vanished from the
-- source; the row repeats the last captured values).
--
-- A version is (natural id, last_updated_date, last_updated_time, content_hash, is_deleted).
-- The unique constraint makes inserting the same version twice impossible, whichever way it
-- arrives (overlapping windows, a retried batch, a full re-read). The content hash is part of the
-- key because a silent source edit keeps last_updated, so (natural id, last_updated) alone is not
-- unique.

ALTER TABLE fact_sales_order
    ADD COLUMN content_hash text NOT NULL,
    ADD COLUMN batch_id text NOT NULL,
    ADD COLUMN sequence bigint NOT NULL,
    ADD COLUMN capture_seq bigint NOT NULL,
    ADD COLUMN is_deleted boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT fact_sales_order_version_key UNIQUE
        (sales_order_id, last_updated_date, last_updated_time, content_hash, is_deleted);

ALTER TABLE fact_purchase_order
    ADD COLUMN content_hash text NOT NULL,
    ADD COLUMN batch_id text NOT NULL,
    ADD COLUMN sequence bigint NOT NULL,
    ADD COLUMN capture_seq bigint NOT NULL,
    ADD COLUMN is_deleted boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT fact_purchase_order_version_key UNIQUE
        (purchase_order_id, last_updated_date, last_updated_time, content_hash, is_deleted);

ALTER TABLE fact_payment
    ADD COLUMN content_hash text NOT NULL,
    ADD COLUMN batch_id text NOT NULL,
    ADD COLUMN sequence bigint NOT NULL,
    ADD COLUMN capture_seq bigint NOT NULL,
    ADD COLUMN is_deleted boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT fact_payment_version_key UNIQUE
        (payment_id, last_updated_date, last_updated_time, content_hash, is_deleted);

-- One row per processed batch loaded, written in the batch's own transaction: a restarted load
-- skips exactly what committed.
CREATE TABLE warehouse_batch_ledger (
    batch_id             text PRIMARY KEY,
    sequence             bigint NOT NULL UNIQUE,
    manifest_key         text NOT NULL,
    rows                 jsonb NOT NULL,
    fact_versions_added  jsonb NOT NULL,
    loaded_at            timestamptz NOT NULL DEFAULT now()
);

-- Current state: the latest version per natural id, by (last_updated_date, last_updated_time,
-- record id); an id whose latest version is a deletion marker is absent.
CREATE VIEW fact_sales_order_current AS
SELECT latest.*
FROM (
    SELECT DISTINCT ON (sales_order_id) *
    FROM fact_sales_order
    ORDER BY sales_order_id, last_updated_date DESC, last_updated_time DESC, sales_record_id DESC
) AS latest
WHERE NOT latest.is_deleted;

CREATE VIEW fact_purchase_order_current AS
SELECT latest.*
FROM (
    SELECT DISTINCT ON (purchase_order_id) *
    FROM fact_purchase_order
    ORDER BY purchase_order_id, last_updated_date DESC, last_updated_time DESC,
        purchase_record_id DESC
) AS latest
WHERE NOT latest.is_deleted;

CREATE VIEW fact_payment_current AS
SELECT latest.*
FROM (
    SELECT DISTINCT ON (payment_id) *
    FROM fact_payment
    ORDER BY payment_id, last_updated_date DESC, last_updated_time DESC, payment_record_id DESC
) AS latest
WHERE NOT latest.is_deleted;
