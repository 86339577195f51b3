from __future__ import annotations

from datetime import UTC, datetime

import pytest

from totes.clock import parse_instant


def test_parse_instant_accepts_z_and_refuses_naive() -> None:
    assert parse_instant("2024-02-23T11:00:00Z") == datetime(2024, 2, 23, 11, tzinfo=UTC)
    assert parse_instant("2024-02-23T13:00:00+02:00") == datetime(2024, 2, 23, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        parse_instant("2024-02-23T11:00:00")
