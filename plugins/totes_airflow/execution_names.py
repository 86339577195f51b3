"""Step Functions execution names derived from a DAG run, so that a retry or a cleared task finds
the execution its run already started instead of starting a second one."""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 80  # Step Functions limit on execution names
_HASH_LENGTH = 8
# Step Functions forbids whitespace, brackets, wildcards and ``"#%\^|~`$&,;:/``, among them the
# ``:`` and ``+`` of every Airflow run id; CloudWatch metrics accept only ASCII letters, digits,
# ``-`` and ``_``. Keep just those.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_ATTEMPT_SUFFIX = len("-r999")


def execution_name(dag_id: str, run_id: str, attempt: int = 1) -> str:
    """A valid, readable name unique to (dag_id, run_id) and attempt.

    Sanitising alone would merge run ids that differ only in forbidden characters (``+`` and
    ``-`` both become ``-``) and truncation would merge long ones, so a short hash of the
    original pair keeps names unique. ``attempt`` > 1 names a fresh execution after a failed one.
    """
    if attempt < 1 or attempt > 999:
        raise ValueError(f"attempt must be between 1 and 999, got {attempt}")
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:_HASH_LENGTH]
    readable = _UNSAFE.sub("-", f"{dag_id}-{run_id}").strip("-")
    room = MAX_LENGTH - _MAX_ATTEMPT_SUFFIX - 1 - _HASH_LENGTH
    name = f"{readable[:room].rstrip('-')}-{digest}"
    return name if attempt == 1 else f"{name}-r{attempt}"
