"""The one settings module: every configuration value the pipeline reads, read once.

Values come from environment variables (the names of the product brief). On AWS the database
credentials come from Secrets Manager instead: set ``TOTES_SOURCE_SECRET_ID`` /
``TOTES_WAREHOUSE_SECRET_ID`` to a secret whose JSON holds the same variable names. Secrets are
read through Powertools' parameters utility, cached for ``SECRET_MAX_AGE_SECONDS`` and re-read on
demand (``fresh=True``) after the database rejected the cached credentials, so a rotated password
reaches warm Lambdas at their next invocation. A missing or malformed value raises
:class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from totes.errors import SettingsError, reason

FULL_SCAN_CADENCES = ("daily", "every-run", "on-demand")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SECRET_MAX_AGE_SECONDS = 300


@dataclass(frozen=True)
class DbSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    sslmode: str = "prefer"

    def conninfo(
        self, *, connect_timeout: int = 10, application_name: str = "totes"
    ) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``; the password never goes into a string."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            "sslmode": self.sslmode,
            "connect_timeout": connect_timeout,
            "application_name": application_name,
        }

    def describe(self) -> str:
        """Where the database is, safe to log."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class LakeLocation:
    """``s3://bucket[/prefix]`` or a local directory."""

    uri: str
    bucket: str | None
    prefix: str
    local_path: Path | None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


@dataclass(frozen=True)
class ExtractSettings:
    overlap: timedelta = timedelta(minutes=10)
    full_scan_cadence: str = "daily"
    # A source query that takes longer fails with a clear error before the Lambda's own 15
    # minutes end it without one.
    statement_timeout: timedelta = timedelta(minutes=10)


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _port(env: Mapping[str, str], name: str, default: str | None = None) -> int:
    raw = env.get(name, "").strip() or default
    if raw is None:
        raise SettingsError(f"environment variable {name} is not set")
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a port number") from None
    if not 0 < port < 65536:
        raise SettingsError(f"environment variable {name} must be between 1 and 65535")
    return port


def _sslmode(env: Mapping[str, str], name: str) -> str:
    mode = env.get(name, "").strip() or "prefer"
    if mode not in SSL_MODES:
        raise SettingsError(f"environment variable {name} must be one of {', '.join(SSL_MODES)}")
    return mode


def _with_secret(env: Mapping[str, str], secret_var: str, *, fresh: bool) -> Mapping[str, str]:
    """Overlay the JSON of a Secrets Manager secret on the environment when one is configured."""
    secret_id = env.get(secret_var, "").strip()
    if not secret_id:
        return env
    from aws_lambda_powertools.utilities import parameters  # only deployed configurations

    try:
        values = parameters.get_secret(
            secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=fresh
        )
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise SettingsError(
            f"secret named by {secret_var} could not be read: {reason(cause)}"
        ) from None
    if not isinstance(values, dict):
        raise SettingsError(f"secret named by {secret_var} must be a JSON object")
    return {**env, **{str(k): str(v) for k, v in values.items()}}


def source_db(env: Mapping[str, str] | None = None, *, fresh: bool = False) -> DbSettings:
    """The totesys source; ``fresh`` re-reads its secret instead of using the cached one."""
    env = _with_secret(os.environ if env is None else env, "TOTES_SOURCE_SECRET_ID", fresh=fresh)
    return DbSettings(
        host=_require(env, "PG_HOST"),
        port=_port(env, "PG_PORT", "5432"),
        user=_require(env, "PG_USER"),
        password=env.get("PG_PASSWORD", ""),
        database=_require(env, "PG_DATABASE"),
        sslmode=_sslmode(env, "PG_SSLMODE"),
    )


def warehouse_db(env: Mapping[str, str] | None = None, *, fresh: bool = False) -> DbSettings:
    """The warehouse; ``fresh`` re-reads its secret instead of using the cached one."""
    env = _with_secret(os.environ if env is None else env, "TOTES_WAREHOUSE_SECRET_ID", fresh=fresh)
    user = env.get("PG_USER_DW", "").strip() or env.get("PG_USER", "").strip()
    if not user:
        raise SettingsError("environment variable PG_USER_DW (or PG_USER) is not set")
    return DbSettings(
        host=_require(env, "PG_HOST_DW"),
        port=_port(env, "PG_PORT_DW", env.get("PG_PORT", "").strip() or "5432"),
        user=user,
        password=env.get("PG_PASSWORD_DW", ""),
        database=_require(env, "PG_DATABASE_DW"),
        sslmode=_sslmode(env, "PG_SSLMODE_DW"),
    )


def parse_lake_uri(name: str, uri: str) -> LakeLocation:
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise SettingsError(
                f"environment variable {name} must name a bucket: s3://bucket[/prefix]"
            )
        return LakeLocation(uri, bucket, prefix.strip("/"), None)
    if "://" in uri:
        raise SettingsError(
            f"environment variable {name} must be s3://bucket[/prefix] or a directory"
        )
    return LakeLocation(uri, None, "", Path(uri).expanduser().resolve())


def ingestion_lake(env: Mapping[str, str] | None = None) -> LakeLocation:
    env = os.environ if env is None else env
    return parse_lake_uri("TOTES_INGESTION_URI", _require(env, "TOTES_INGESTION_URI"))


def processed_lake(env: Mapping[str, str] | None = None) -> LakeLocation:
    env = os.environ if env is None else env
    return parse_lake_uri("TOTES_PROCESSED_URI", _require(env, "TOTES_PROCESSED_URI"))


def extract_settings(env: Mapping[str, str] | None = None) -> ExtractSettings:
    env = os.environ if env is None else env
    raw_overlap = env.get("TOTES_OVERLAP_MINUTES", "").strip() or "10"
    try:
        overlap = timedelta(minutes=float(raw_overlap))
    except ValueError:
        raise SettingsError("environment variable TOTES_OVERLAP_MINUTES must be a number") from None
    if overlap < timedelta(0):
        raise SettingsError("environment variable TOTES_OVERLAP_MINUTES must not be negative")
    cadence = env.get("TOTES_FULL_SCAN_CADENCE", "").strip() or "daily"
    if cadence not in FULL_SCAN_CADENCES:
        raise SettingsError(
            "environment variable TOTES_FULL_SCAN_CADENCE must be one of "
            + ", ".join(FULL_SCAN_CADENCES)
        )
    raw_timeout = env.get("TOTES_SOURCE_STATEMENT_TIMEOUT_SECONDS", "").strip() or "600"
    try:
        timeout = timedelta(seconds=float(raw_timeout))
    except ValueError:
        raise SettingsError(
            "environment variable TOTES_SOURCE_STATEMENT_TIMEOUT_SECONDS must be a number"
        ) from None
    if timeout <= timedelta(0):
        raise SettingsError(
            "environment variable TOTES_SOURCE_STATEMENT_TIMEOUT_SECONDS must be positive"
        )
    return ExtractSettings(overlap=overlap, full_scan_cadence=cadence, statement_timeout=timeout)


def lock_wait(env: Mapping[str, str] | None = None) -> timedelta:
    """How long the lock Lambda waits for another cycle to finish (``TOTES_LOCK_WAIT_SECONDS``,
    default 300) before the execution ends as skipped; its timeout must exceed it."""
    env = os.environ if env is None else env
    raw = env.get("TOTES_LOCK_WAIT_SECONDS", "").strip() or "300"
    try:
        seconds = float(raw)
    except ValueError:
        raise SettingsError(
            "environment variable TOTES_LOCK_WAIT_SECONDS must be a number"
        ) from None
    if not 0 <= seconds <= 600:
        raise SettingsError("environment variable TOTES_LOCK_WAIT_SECONDS must be 0 to 600")
    return timedelta(seconds=seconds)
