-- The newest source change (last_updated) among the fact rows of each loaded batch. The newest
-- change visible in the warehouse is then the maximum over this small table, instead of a scan of
-- every fact table; the load reports it, and the freshness metrics are computed from it.

ALTER TABLE warehouse_batch_ledger ADD COLUMN newest_change timestamp;
