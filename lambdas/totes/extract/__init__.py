"""Lambda 1: capture every new, changed and silently edited totesys row into the ingestion lake."""
