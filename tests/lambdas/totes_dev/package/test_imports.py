"""A handler reaches the modules its import statements name, eagerly or inside functions."""

from __future__ import annotations

from pathlib import Path

from totes_dev.package import imports

STDLIB = frozenset({"os", "json", "typing", "__future__"})


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_reach_follows_eager_lazy_and_relative_imports_and_skips_type_checking(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/handler.py": (
                "from __future__ import annotations\n"
                "import json\n"
                "from typing import TYPE_CHECKING\n"
                "from app.core import run\n"
                "from . import helpers\n"
                "import numpy as np\n"
                "if TYPE_CHECKING:\n"
                "    import pandas\n"
                "    from app import typing_only\n"
                "def handler(event, context):\n"
                "    import pyarrow.parquet\n"
                "    from app import lazy\n"
                "    return run(event)\n"
            ),
            "app/core.py": "import os\ndef run(e):\n    return e\n",
            "app/helpers.py": "from .sub.deep import X\n",
            "app/sub/__init__.py": "",
            "app/sub/deep.py": "X = 1\n",
            "app/lazy.py": "import psycopg\n",
            "app/typing_only.py": "",
            "app/unused.py": "import boto3\n",
        },
    )
    tree = imports.read_tree(tmp_path, "app")
    reached = imports.reach(tree, ["app.handler"], STDLIB)
    assert reached.modules == {
        "app", "app.handler", "app.core", "app.helpers", "app.sub", "app.sub.deep", "app.lazy",
    }  # fmt: skip
    assert reached.external_eager == {"numpy"}
    # psycopg is imported at the top of app.lazy, but app.lazy itself only inside a function.
    assert reached.external_lazy == {"pyarrow", "psycopg"}


def test_a_module_reached_lazily_and_then_eagerly_counts_as_eager(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "def f():\n    import app.shared\nimport app.b\n",
            "app/b.py": "import app.shared\n",
            "app/shared.py": "import yaml\n",
        },
    )
    reached = imports.reach(imports.read_tree(tmp_path, "app"), ["app.a"], STDLIB)
    assert reached.external_eager == {"yaml"}
    assert reached.external_lazy == set()
