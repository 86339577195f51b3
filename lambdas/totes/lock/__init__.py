"""The cycle lock: one extract -> transform -> load cycle (or replay) at a time, across processes,
Lambdas and Step Functions executions."""
