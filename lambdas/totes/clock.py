"""Instants as the pipeline passes them around: ISO-8601 text with an explicit offset (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant with an explicit offset (``Z`` allowed), as aware UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def stored_instant(text: object) -> datetime | None:
    """An instant as this project's own JSON documents store it (``isoformat()``), None for
    null: read back exactly as written, naive or aware."""
    return None if text is None else datetime.fromisoformat(str(text))
