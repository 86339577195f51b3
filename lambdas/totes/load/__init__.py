"""Lambda 3, the load: migrations, merging processed batches into the PostgreSQL warehouse, and
rebuilding it from the lake."""
