from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from totes.cli import main
from totes.lake import LocalLake
from totes.tables import LOAD_ORDER
from totes.transform.transformer import transform_pending

Land = Callable[..., str]


def test_list_then_replay_a_quarantined_row_from_the_command_line(
    tmp_path: Path,
    nov_source: dict[str, pa.Table],
    land: Land,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ingestion, processed = LocalLake(tmp_path / "in"), LocalLake(tmp_path / "out")
    monkeypatch.setenv("TOTES_INGESTION_URI", str(ingestion.root))
    monkeypatch.setenv("TOTES_PROCESSED_URI", str(processed.root))
    land(ingestion, {name: nov_source[name] for name in LOAD_ORDER})
    currency = nov_source["currency"].filter(pc.equal(nov_source["currency"]["currency_id"], 3))
    unknown = currency.set_column(
        currency.schema.get_field_index("currency_code"), "currency_code", pa.array(["XYZ"])
    ).set_column(
        currency.schema.get_field_index("last_updated"),
        "last_updated",
        pc.add(currency["last_updated"], pa.scalar(1000, pa.duration("ms"))),
    )
    land(ingestion, {"currency": unknown})
    summary = transform_pending(ingestion, processed)
    assert summary["quarantined"] == {name: int(name == "currency") for name in LOAD_ORDER}
    capsys.readouterr()  # the stage's own log lines

    assert main(["quarantine", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # One line per row: which object, table and key, and why.
    assert len(listed) == 1
    assert (listed[0]["table"], listed[0]["key"]) == ("currency", 3)
    assert "currency_code is not one of" in listed[0]["reason"]
    assert listed[0]["object"].startswith("_quarantine/currency/")

    assert main(["quarantine", "replay", listed[0]["object"]]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["rows"] == {"currency": 1}
    # The cause is still there, so the replayed row is quarantined again, never dropped.
    assert transform_pending(ingestion, processed)["quarantined"]["currency"] == 1
