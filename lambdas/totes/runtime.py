"""What the Lambda handlers share: resources built once per warm container, credentials that
recover from a rotation, and the one reset tests use.

A Lambda container serves many invocations; building boto3 clients and reading settings costs
more than a whole no-change run, so each handler builds them on first use (:func:`per_container`)
and reuses them. Database credentials are not cached here: they come from
:mod:`totes.settings`, whose secret cache has a maximum age, and a stage whose login is refused
runs once more with the secret re-read (:func:`with_fresh_credentials`), so "fix the secret and
the next run recovers" holds for warm containers too.

Tests that change the environment between invocations call :func:`reset_container`, which is what
a new container would be: the local stack does so whenever a function's configuration changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from totes.errors import TotesError
from totes.observability import log

T = TypeVar("T")

_built: list[Any] = []


def per_container(factory: Callable[[], T]) -> Callable[[], T]:
    """``factory``'s result, built on first use and kept for the container's life."""
    cached = functools.cache(factory)
    _built.append(cached)
    return cached


def reset_container() -> None:
    """Forget everything :func:`per_container` built and every cached secret, as a cold start."""
    for cached in _built:
        cached.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()


def with_fresh_credentials(run: Callable[[bool], T]) -> T:
    """``run(fresh=False)``; if the database refused the credentials, ``run(fresh=True)`` once,
    with the secret read again (the password was rotated since it was cached)."""
    try:
        return run(False)
    except TotesError as exc:
        if not exc.credentials_rejected:
            raise
        log("credentials.rejected", level="warning", reason=str(exc), retry="secret re-read")
    return run(True)


@per_container
def _stepfunctions() -> Any:
    import boto3

    return boto3.client("stepfunctions")


def execution_ended(execution_arn: str | None) -> bool:
    """True when ``execution_arn`` names a Step Functions execution that is no longer running.
    Without an ARN, or when the status cannot be read, False: waiting on is the safe side."""
    if not execution_arn:
        return False
    try:
        status = _stepfunctions().describe_execution(executionArn=execution_arn)["status"]
    except Exception as exc:
        log("execution_status_unknown", level="warning", execution=execution_arn, reason=str(exc))
        return False
    return bool(status != "RUNNING")
