"""Names of the AWS resources, shared by Terraform (infra/), the DAG defaults and the local stack,
so that the local moto stack looks exactly like a deployed environment."""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "totes"


@dataclass(frozen=True)
class ResourceNames:
    environment: str = "dev"

    def _name(self, role: str) -> str:
        return f"{PROJECT}-{self.environment}-{role}"

    @property
    def ingestion_bucket(self) -> str:
        return self._name("ingestion")

    @property
    def processed_bucket(self) -> str:
        return self._name("processed")

    @property
    def alerts_topic(self) -> str:
        return self._name("alerts")

    @property
    def source_secret(self) -> str:
        return f"{PROJECT}/{self.environment}/source-db"

    @property
    def warehouse_secret(self) -> str:
        return f"{PROJECT}/{self.environment}/warehouse-db"

    @property
    def state_machine(self) -> str:
        return self._name("pipeline")

    def lambda_function(self, stage: str) -> str:
        """stage is one of extract, transform, load, or lock (the cycle lock)."""
        return self._name(stage)
