"""The totesys source database for local work and tests: schema, real snapshots, generated data
and simulated activity. The pipeline itself only ever reads the source."""
