"""The contracts between the stages, below all of them: the ingestion lake (landing columns,
prefixes, manifests), the processed lake, and one declarative spec per warehouse table. Stages
depend on these and never on each other."""
