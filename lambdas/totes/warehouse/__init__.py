"""Lambda 3: the PostgreSQL star-schema warehouse (migrations, loading, check, rebuild)."""
