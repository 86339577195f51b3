"""The local stack for development and tests: a throwaway PostgreSQL and a moto server.

Never imported by Lambda handlers or DAG code; it stands in for what AWS provides.
"""
