"""``build/artifacts.json``: what ``make package`` built, in the format Terraform's artifacts
module reads (infra/modules/artifacts/main.tf; example: tests/infra/artifacts.example.json).

Paths are relative to the repository root, as Terraform expects. Layers also list the
distributions they hold (``packages``), which Terraform ignores and people and tests read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
NAME = "artifacts.json"


@dataclass(frozen=True)
class BuiltLayer:
    name: str
    zip: Path
    sha256: str
    base64sha256: str
    unzipped_bytes: int
    zipped_bytes: int
    runtime: str
    architecture: str
    packages: Mapping[str, str]


@dataclass(frozen=True)
class BuiltFunction:
    name: str
    zip: Path
    handler: str
    runtime: str
    architecture: str
    layers: tuple[str, ...]
    sha256: str
    base64sha256: str
    unzipped_bytes: int
    zipped_bytes: int
    total_unzipped_bytes: int


@dataclass(frozen=True)
class BuiltMwaa:
    plugins_zip: Path
    plugins_sha256: str
    requirements: Path
    requirements_sha256: str
    dags: Path


@dataclass(frozen=True)
class Manifest:
    path: Path
    layers: Mapping[str, BuiltLayer]
    functions: Mapping[str, BuiltFunction]
    mwaa: BuiltMwaa


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def to_json(manifest: Manifest, root: Path) -> str:
    document: dict[str, Any] = {
        "format": FORMAT,
        "layers": {
            name: {
                "zip": _relative(layer.zip, root),
                "sha256": layer.sha256,
                "base64sha256": layer.base64sha256,
                "unzipped_bytes": layer.unzipped_bytes,
                "zipped_bytes": layer.zipped_bytes,
                "runtime": layer.runtime,
                "architecture": layer.architecture,
                "packages": dict(sorted(layer.packages.items())),
            }
            for name, layer in sorted(manifest.layers.items())
        },
        "functions": {
            name: {
                "zip": _relative(function.zip, root),
                "handler": function.handler,
                "runtime": function.runtime,
                "architecture": function.architecture,
                "layers": list(function.layers),
                "sha256": function.sha256,
                "base64sha256": function.base64sha256,
                "unzipped_bytes": function.unzipped_bytes,
                "zipped_bytes": function.zipped_bytes,
                "total_unzipped_bytes": function.total_unzipped_bytes,
            }
            for name, function in sorted(manifest.functions.items())
        },
        "mwaa": {
            "plugins_zip": _relative(manifest.mwaa.plugins_zip, root),
            "plugins_sha256": manifest.mwaa.plugins_sha256,
            "requirements": _relative(manifest.mwaa.requirements, root),
            "requirements_sha256": manifest.mwaa.requirements_sha256,
            "dags": _relative(manifest.mwaa.dags, root),
        },
    }
    return json.dumps(document, indent=2) + "\n"


class ManifestError(ValueError):
    pass


def load(path: Path, root: Path) -> Manifest:
    """Read a manifest written by :func:`to_json` (paths resolved against ``root``)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path.name} not found: build it with make package") from None
    if document.get("format") != FORMAT:
        raise ManifestError(f"{path.name} is not format {FORMAT}: build it again")
    layers = {
        name: BuiltLayer(
            name=name,
            zip=root / entry["zip"],
            sha256=entry["sha256"],
            base64sha256=entry["base64sha256"],
            unzipped_bytes=entry["unzipped_bytes"],
            zipped_bytes=entry["zipped_bytes"],
            runtime=entry["runtime"],
            architecture=entry["architecture"],
            packages=entry["packages"],
        )
        for name, entry in document["layers"].items()
    }
    functions = {
        name: BuiltFunction(
            name=name,
            zip=root / entry["zip"],
            handler=entry["handler"],
            runtime=entry["runtime"],
            architecture=entry["architecture"],
            layers=tuple(entry["layers"]),
            sha256=entry["sha256"],
            base64sha256=entry["base64sha256"],
            unzipped_bytes=entry["unzipped_bytes"],
            zipped_bytes=entry["zipped_bytes"],
            total_unzipped_bytes=entry["total_unzipped_bytes"],
        )
        for name, entry in document["functions"].items()
    }
    mwaa = document["mwaa"]
    return Manifest(
        path=path,
        layers=layers,
        functions=functions,
        mwaa=BuiltMwaa(
            plugins_zip=root / mwaa["plugins_zip"],
            plugins_sha256=mwaa["plugins_sha256"],
            requirements=root / mwaa["requirements"],
            requirements_sha256=mwaa["requirements_sha256"],
            dags=root / mwaa["dags"],
        ),
    )
