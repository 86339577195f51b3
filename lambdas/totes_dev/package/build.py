"""``make package``: every deployable artifact, built from the lock, and the manifest.

Steps: resolve each layer's requirements for the Lambda runtime under the lock (uv, binary
wheels for manylinux x86_64 only, never this machine's own builds) and check that every version
is the lock's; install the wheels, trim what never runs (:data:`plan.TRIMS`), compile bytecode
with the runtime's Python (hash-based ``.pyc``, the same bytes on every build) and zip them
reproducibly; zip each function's code, the modules its handler reaches and nothing else; build
MWAA's ``plugins.zip`` and copy ``requirements.txt``; check every function against Lambda's
limits; write ``artifacts.json``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import TextIO

from packaging.utils import canonicalize_name

from totes.progress import Progress
from totes_dev.package import imports, lockfile, manifest, plan, zips
from totes_dev.package.interpreter import runtime_python, uv_command

REPO_ROOT = Path(__file__).resolve().parents[3]
# Lambda's "250 MB" is 262,144,000 bytes: its MB are 1,048,576 bytes, and so are the summary's.
MB = 1_048_576


class BuildError(RuntimeError):
    """The build stopped: the message says why and what to do."""


@dataclass(frozen=True)
class Sources:
    """Where the build reads from: a repository checkout."""

    root: Path = REPO_ROOT

    @property
    def lock(self) -> Path:
        return self.root / "requirements-dev.lock"

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def lambdas(self) -> Path:
        return self.root / "lambdas"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def dags(self) -> Path:
        return self.root / "dags"

    @property
    def requirements(self) -> Path:
        return self.root / "requirements.txt"

    def dependencies(self) -> list[str]:
        project = tomllib.loads(self.pyproject.read_text(encoding="utf-8"))["project"]
        return list(project["dependencies"])

    def package_data(self, package: str) -> list[str]:
        config = tomllib.loads(self.pyproject.read_text(encoding="utf-8"))
        data = config.get("tool", {}).get("setuptools", {}).get("package-data", {})
        return list(data.get(package, []))


@dataclass(frozen=True)
class Toolchain:
    uv: str
    python: Path  # CPython of the Lambda runtime's version
    python_full_version: str

    @classmethod
    def find(cls) -> Toolchain:
        uv = uv_command()
        python = runtime_python(uv)
        version = subprocess.run(
            [str(python), "-I", "-S", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return cls(uv, python, version)


@dataclass
class Report:
    """What the build measured, for the summary it prints."""

    trimmed: dict[str, dict[str, int]] = field(default_factory=dict)  # layer -> rule -> bytes
    lazy_outside_layers: dict[str, list[str]] = field(default_factory=dict)


def _run(command: Sequence[str], *, what: str, stdin: str | None = None) -> str:
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise BuildError(f"{what} failed:\n  " + "\n  ".join(detail))
    return result.stdout


def _uv_target_options(tools: Toolchain) -> list[str]:
    return [
        "--python",
        str(tools.python),
        "--python-version",
        plan.PYTHON_VERSION,
        "--python-platform",
        plan.PYTHON_PLATFORM,
        "--only-binary",
        ":all:",
        "--no-config",
        "--no-python-downloads",
    ]


def resolve(layer: plan.Layer, sources: Sources, tools: Toolchain) -> dict[str, str]:
    """The layer's requirements and everything they need, for the Lambda runtime, under the
    lock's pins (name -> version)."""
    output = _run(
        [
            tools.uv,
            "pip",
            "compile",
            "-",
            "--constraint",
            str(sources.lock),
            *_uv_target_options(tools),
            "--no-header",
            "--no-annotate",
            "--quiet",
        ],
        what=f"resolving the {layer.name} layer",
        stdin="\n".join(layer.requirements) + "\n",
    )
    resolved: dict[str, str] = {}
    for line in output.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            resolved[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return resolved


def _install(
    packages: Mapping[str, str], target: Path, stage: Path, tools: Toolchain, what: str
) -> None:
    pins = stage / f"{target.parent.name}-pins.txt"
    pins.write_text("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())), encoding="utf-8")
    _run(
        [
            tools.uv,
            "pip",
            "install",
            "--target",
            str(target),
            *_uv_target_options(tools),
            "--no-deps",
            "--link-mode",
            "copy",
            "--quiet",
            "-r",
            str(pins),
        ],
        what=what,
    )


def _trim(site: Path) -> dict[str, int]:
    """Remove what :data:`plan.TRIMS` names and strip the debug information
    :data:`plan.DEBUG_INFO` names; bytes removed per rule."""
    removed: dict[str, int] = {}
    for name, path in sorted(zips.files_under(site).items()):
        rule = plan.trimmed(name)
        if rule is not None:
            removed[rule.why] = removed.get(rule.why, 0) + path.stat().st_size
            path.unlink()
    for directory in sorted((p for p in site.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    for name, path in sorted(zips.files_under(site).items()):
        if plan.debug_stripped(name):
            if shutil.which("strip") is None:
                raise BuildError(
                    "binutils' strip is needed to build the layers (apt-get install binutils)"
                )
            before = path.stat().st_size
            _run(
                ["strip", "--strip-debug", str(path)],
                what=f"stripping debug information from {name}",
            )
            removed[plan.DEBUG_INFO.why] = (
                removed.get(plan.DEBUG_INFO.why, 0) + before - path.stat().st_size
            )
    return removed


def installed_distributions(site: Path) -> dict[str, str]:
    """name -> version of every ``*.dist-info`` under ``site``, from its METADATA."""
    found: dict[str, str] = {}
    for info in sorted(site.glob("*.dist-info")):
        headers = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        found[canonicalize_name(headers["Name"])] = headers["Version"]
    return found


def _compile(directory: Path, runtime_root: str, tools: Toolchain) -> None:
    """Bytecode for every module, as the runtime would write it if it could (Lambda's code and
    layer directories are read-only, so without it every cold start compiles every import).
    ``unchecked-hash`` files hold no timestamp, so two builds give the same bytes, and they are
    never checked against their sources, which nothing changes on Lambda. The recorded source
    paths are where Lambda puts the files, not this machine's."""
    _run(
        [
            str(tools.python),
            "-I",
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(directory),
            "-p",
            runtime_root,
            str(directory),
        ],
        what=f"compiling bytecode under {directory.name}",
    )


def top_level_names(site: Path) -> set[str]:
    """The importable top-level names a site directory provides."""
    names = set()
    for entry in site.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", ".libs", ".data")):
            names.add(entry.name)
        elif entry.suffix in (".py", ".so"):
            names.add(entry.name.split(".")[0])
    return names


def build_layers(
    sources: Sources,
    tools: Toolchain,
    stage: Path,
    output: Path,
    progress: Progress,
    report: Report,
) -> tuple[dict[str, manifest.BuiltLayer], dict[str, Path]]:
    plan.check_layers_cover(sources.dependencies())
    lock = lockfile.read_lock(
        sources.lock.read_text(encoding="utf-8"),
        lockfile.lambda_environment(tools.python_full_version),
    )
    closures = {}
    for layer in plan.LAYERS:
        closures[layer.name] = resolve(layer, sources, tools)
        lockfile.check_against_lock(closures[layer.name], lock, what=f"the {layer.name} layer")
        progress.advance(f"resolved the {layer.name} layer")
    packages = plan.layer_packages(closures)
    plan.check_functions(closures, packages)

    built: dict[str, manifest.BuiltLayer] = {}
    sites: dict[str, Path] = {}
    for layer in plan.LAYERS:
        site = stage / "layers" / layer.name / "python"
        _install(packages[layer.name], site, stage, tools, f"installing the {layer.name} layer")
        report.trimmed[layer.name] = _trim(site)
        found = installed_distributions(site)
        if found != packages[layer.name]:
            raise BuildError(
                f"the {layer.name} layer holds {found}, expected {packages[layer.name]}"
            )
        _compile(site.parent, plan.LAYER_ROOT, tools)
        digest = zips.write_zip(
            output / "layers" / f"{layer.name}.zip",
            zips.files_under(site, plan.LAYER_PREFIX),
        )
        built[layer.name] = manifest.BuiltLayer(
            name=layer.name,
            zip=output / "layers" / f"{layer.name}.zip",
            sha256=digest.sha256,
            base64sha256=digest.base64sha256,
            unzipped_bytes=digest.unzipped_bytes,
            zipped_bytes=digest.zipped_bytes,
            runtime=plan.RUNTIME,
            architecture=plan.ARCHITECTURE,
            packages=packages[layer.name],
        )
        sites[layer.name] = site
        progress.advance(f"{layer.name} layer: {digest.unzipped_bytes / MB:.1f} MB unzipped")
    return built, sites


def _package_data(sources: Sources, package: str, modules: Iterable[str]) -> dict[str, Path]:
    """Data files declared in pyproject.toml whose package is among ``modules``."""
    found: dict[str, Path] = {}
    base = sources.lambdas / package
    for pattern in sources.package_data(package):
        for path in sorted(base.glob(pattern)):
            owner = path.parent
            while not (owner / "__init__.py").exists():
                owner = owner.parent
            if imports.module_name(sources.lambdas, owner / "__init__.py") in modules:
                found[path.relative_to(sources.lambdas).as_posix()] = path
    return found


def function_files(
    sources: Sources, function: plan.Function
) -> tuple[dict[str, Path], imports.Reach]:
    """A function's code: the modules its handler reaches, and their package data."""
    tree = imports.read_tree(sources.lambdas, "totes")
    handler_module = function.handler.rpartition(".")[0]
    if handler_module not in tree:
        raise BuildError(f"{function.name}: handler module {handler_module} does not exist")
    reached = imports.reach(tree, [handler_module], frozenset(sys.stdlib_module_names))
    files = {
        tree[m].path.relative_to(sources.lambdas).as_posix(): tree[m].path for m in reached.modules
    }
    files.update(_package_data(sources, "totes", reached.modules))
    return files, reached


def build_functions(
    sources: Sources,
    tools: Toolchain,
    stage: Path,
    output: Path,
    layers: Mapping[str, manifest.BuiltLayer],
    sites: Mapping[str, Path],
    progress: Progress,
    report: Report,
) -> dict[str, manifest.BuiltFunction]:
    built = {}
    for function in plan.FUNCTIONS:
        files, reached = function_files(sources, function)
        provided = set().union(*(top_level_names(sites[layer]) for layer in function.layers))
        missing = reached.external_eager - provided
        if missing:
            raise BuildError(
                f"{function.name}: its code imports {', '.join(sorted(missing))} when it loads, "
                f"and none of its layers ({', '.join(function.layers)}) provides it"
            )
        report.lazy_outside_layers[function.name] = sorted(reached.external_lazy - provided)
        code = stage / "functions" / function.name
        for name, path in files.items():
            (code / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, code / name)
        _compile(code, plan.TASK_ROOT, tools)
        target = output / "functions" / f"{function.name}.zip"
        digest = zips.write_zip(target, zips.files_under(code))
        total = digest.unzipped_bytes + sum(layers[n].unzipped_bytes for n in function.layers)
        built[function.name] = manifest.BuiltFunction(
            name=function.name,
            zip=target,
            handler=function.handler,
            runtime=plan.RUNTIME,
            architecture=plan.ARCHITECTURE,
            layers=function.layers,
            sha256=digest.sha256,
            base64sha256=digest.base64sha256,
            unzipped_bytes=digest.unzipped_bytes,
            zipped_bytes=digest.zipped_bytes,
            total_unzipped_bytes=total,
        )
        progress.advance(f"{function.name}: {len(files)} files")
    return built


def plugin_files(sources: Sources) -> dict[str, Path]:
    """``plugins.zip``: the whole ``totes_airflow`` package and the ``totes`` modules that it and
    the DAGs import (``totes.naming``), at the zip's root as MWAA's plugins folder expects."""
    tree = {
        **imports.read_tree(sources.plugins, "totes_airflow"),
        **imports.read_tree(sources.lambdas, "totes"),
    }
    dags = {
        f"dags.{p.stem}": imports.read_imports(sources.dags, p)
        for p in sorted(sources.dags.glob("*.py"))
    }
    roots = [m for m in tree if m.split(".")[0] == "totes_airflow"]
    roots += [name for dag in dags.values() for name in dag.eager | dag.lazy]
    reached = imports.reach(tree, roots, frozenset(sys.stdlib_module_names))
    files = {}
    for module in reached.modules:
        path = tree[module].path
        base = sources.plugins if module.split(".")[0] == "totes_airflow" else sources.lambdas
        files[path.relative_to(base).as_posix()] = path
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_mwaa(sources: Sources, output: Path) -> manifest.BuiltMwaa:
    """``plugins.zip`` and ``requirements.txt`` (copied as it is: its first line points MWAA at
    the constraints of its Airflow and Python versions)."""
    plugins = output / "mwaa" / "plugins.zip"
    zips.write_zip(plugins, plugin_files(sources))
    requirements = output / "mwaa" / "requirements.txt"
    shutil.copyfile(sources.requirements, requirements)
    return manifest.BuiltMwaa(
        plugins_zip=plugins,
        plugins_sha256=_sha256(plugins),
        requirements=requirements,
        requirements_sha256=_sha256(requirements),
        dags=sources.dags,
    )


def check_limits(functions: Mapping[str, manifest.BuiltFunction]) -> None:
    over = [f for f in functions.values() if f.total_unzipped_bytes > plan.UNZIPPED_LIMIT]
    if over:
        raise BuildError(
            "over Lambda's 250 MB unzipped: "
            + ", ".join(f"{f.name} {f.total_unzipped_bytes / MB:.1f} MB" for f in over)
        )
    direct = [f for f in functions.values() if f.zipped_bytes > plan.DIRECT_UPLOAD_LIMIT]
    if direct:
        raise BuildError(
            "function code over Lambda's 50 MB direct upload: "
            + ", ".join(f"{f.name} {f.zipped_bytes / MB:.1f} MB" for f in direct)
        )


def summary(built: manifest.Manifest, report: Report) -> str:
    """The sizes against Lambda's limits, for the terminal and the build log."""
    lines = [
        f"{'function':<10} {'code':>8} {'layers':<20} {'unzipped':>10} {'margin to 250 MB':>18}"
    ]
    for f in built.functions.values():
        margin = plan.UNZIPPED_LIMIT - f.total_unzipped_bytes
        lines.append(
            f"{f.name:<10} {f.unzipped_bytes / MB:>6.2f}MB {'+'.join(f.layers) or '-':<20} "
            f"{f.total_unzipped_bytes / MB:>8.1f}MB {margin / MB:>8.1f}MB "
            f"({100 * margin / plan.UNZIPPED_LIMIT:.0f} %)"
        )
    lines.append(f"{'layer':<10} {'unzipped':>10} {'zipped':>10} {'trimmed':>10}  packages")
    for layer in built.layers.values():
        cut = sum(report.trimmed.get(layer.name, {}).values())
        note = (
            " (over 50 MB: uploaded through S3)"
            if (layer.zipped_bytes > plan.DIRECT_UPLOAD_LIMIT)
            else ""
        )
        lines.append(
            f"{layer.name:<10} {layer.unzipped_bytes / MB:>8.1f}MB "
            f"{layer.zipped_bytes / MB:>8.1f}MB {cut / MB:>8.1f}MB  "
            + ", ".join(f"{n} {v}" for n, v in sorted(layer.packages.items()))
            + note
        )
    for name, lazy in report.lazy_outside_layers.items():
        if lazy:
            lines.append(
                f"{name}: {', '.join(lazy)} is imported only inside functions of its code and is "
                "in none of its layers; its handler must never call them"
            )
    return "\n".join(lines)


def build(
    output: Path,
    *,
    sources: Sources | None = None,
    tools: Toolchain | None = None,
    stream: TextIO | None = None,
) -> tuple[manifest.Manifest, Report]:
    """Build everything into ``output`` and write ``output/artifacts.json``."""
    sources = sources or Sources()
    tools = tools or Toolchain.find()
    output = output.resolve()
    for owned in ("layers", "functions", "mwaa"):
        shutil.rmtree(output / owned, ignore_errors=True)
    (output / manifest.NAME).unlink(missing_ok=True)
    progress = Progress("package", 2 * len(plan.LAYERS) + len(plan.FUNCTIONS) + 1, stream)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="totes-package-") as directory:
        stage = Path(directory)
        layers, sites = build_layers(sources, tools, stage, output, progress, report)
        functions = build_functions(sources, tools, stage, output, layers, sites, progress, report)
    mwaa = build_mwaa(sources, output)
    progress.advance("plugins.zip and requirements.txt")
    check_limits(functions)
    built = manifest.Manifest(output / manifest.NAME, layers, functions, mwaa)
    built.path.write_text(manifest.to_json(built, sources.root), encoding="utf-8")
    return built, report
