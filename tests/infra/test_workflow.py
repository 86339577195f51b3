"""The GitHub workflow that tests and deploys: it must follow the README's deploy steps (the
product brief's secrets and nothing else), pass zizmor and GitHub's schema, and pass the
database settings to Secrets Manager without exposing them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "ci.yml"
README = REPO / "README.md"
BIN = Path(sys.executable).parent

# The product brief's deploy step 1, exactly.
BRIEF_SECRETS = {
    "PG_DATABASE",
    "PG_HOST",
    "PG_PASSWORD",
    "PG_PORT",
    "PG_USER",
    "PG_DATABASE_DW",
    "PG_HOST_DW",
    "PG_PASSWORD_DW",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
}
# The one addition, documented as the recommended alternative to the access keys.
OIDC_SECRET = "AWS_DEPLOY_ROLE_ARN"


def _workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    # YAML 1.1 reads the key "on" as True.
    loaded["on"] = loaded.pop(True)
    return loaded


def _jobs() -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = _workflow()["jobs"]
    return jobs


def _steps(job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _jobs()[job]["steps"]
    return steps


def _runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in _steps(job))


# --- real linters --------------------------------------------------------------------------------


def test_zizmor_finds_nothing_above_low() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(result.stdout)
    serious = [
        f"{f['ident']} ({f['determinations']['severity']})"
        for f in findings
        if f["determinations"]["severity"] not in ("Informational", "Low")
    ]
    assert serious == [], result.stderr


def test_workflows_match_githubs_schema() -> None:
    paths = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert paths
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- what the workflow does ----------------------------------------------------------------------


def test_the_workflow_reads_the_briefs_secrets_and_only_the_documented_role() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", text))
    assert used == BRIEF_SECRETS | {OIDC_SECRET}
    assert "vars." not in text  # no repository variable to set either
    assert "toJSON(secrets" not in text


def test_secrets_reach_steps_as_environment_never_as_command_text() -> None:
    for name, job in _jobs().items():
        for step in job["steps"]:
            run = step.get("run", "")
            assert not re.search(r"\$\{\{\s*secrets\.", run), f"{name}: {step.get('name')}"
    # The database passwords only in the one step that writes them to Secrets Manager.
    holders = [
        (name, step.get("name"))
        for name, job in _jobs().items()
        for step in job["steps"]
        if "PG_PASSWORD" in json.dumps(step)
    ]
    assert holders == [("deploy", "Database settings into Secrets Manager")]


def test_the_listed_branches_deploy_and_pull_requests_only_check() -> None:
    on = _workflow()["on"]
    assert isinstance(on["push"]["branches"], list)
    assert on["push"]["branches"]
    assert "pull_request" in on
    assert "pull_request_target" not in on
    jobs = _jobs()
    for job in ("plan", "deploy"):
        assert jobs[job]["if"] == "github.event_name == 'push'"
    checks = {"test", "security", "terraform", "plan"}
    assert set(jobs["deploy"]["needs"]) == checks
    assert set(jobs) == checks | {"deploy"}


def test_every_check_the_deploy_waits_for_runs() -> None:
    jobs = _jobs()
    assert jobs["test"]["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]
    assert "make test" in _runs("test")  # ruff, mypy and pytest
    security = _runs("security")
    assert "bandit -c .github/bandit.yml -r lambdas plugins dags" in security
    assert "pip-audit --strict" in security
    assert "checkov -d infra" in security
    terraform = _runs("terraform")
    assert "terraform -chdir=infra fmt -check -recursive" in terraform
    assert "terraform -chdir=infra validate" in terraform
    assert "terraform -chdir=infra plan" in _runs("plan")


def test_the_github_job_deselects_only_the_real_snapshot_tests() -> None:
    test = _jobs()["test"]
    assert test["env"]["PYTEST_ADDOPTS"] == '-m "not real_snapshots"'
    # The log lists what is left out, before the run that leaves it out.
    runs = [step.get("run", "") for step in test["steps"]]
    listing = runs.index(".venv/bin/python -m pytest --collect-only -q -m real_snapshots")
    assert test["steps"][listing]["env"] == {"PYTEST_ADDOPTS": ""}
    assert listing < runs.index('make test PYTHON="$PYTHON"')
    assert "real_snapshots" in (REPO / "tests" / "conftest.py").read_text(encoding="utf-8")
    # The CI of a machine with the snapshots runs the README's test command, deselecting nothing.
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
    assert "real_snapshots" not in ci


def test_deploy_builds_applies_then_fills_secrets_then_syncs_dags() -> None:
    names = [step.get("name", step.get("uses", "")) for step in _steps("deploy")]
    order = [
        "Lambda, layer and MWAA artifacts (build/artifacts.json)",
        "terraform init",
        "terraform plan",
        "terraform apply",
        "Terraform outputs (ARNs and names, no credentials)",
        "Database settings into Secrets Manager",
        "Sync the DAG folder to MWAA",
        "MWAA runs the plugins.zip and requirements.txt just uploaded",
    ]
    assert [n for n in names if n in order] == order
    runs = _runs("deploy")
    assert "make package" in runs
    assert "pip install" not in runs  # the artifacts come from make package only
    assert "apply -input=false -lock-timeout=10m tfplan" in runs
    assert 'aws s3 sync "$dags/" "s3://$bucket/dags/" --delete' in runs


def test_credentials_are_the_keys_or_the_oidc_role() -> None:
    for job in ("plan", "deploy"):
        (step,) = [s for s in _steps(job) if "configure-aws-credentials" in s.get("uses", "")]
        assert step["with"] == {
            "aws-region": "${{ secrets.AWS_REGION }}",
            "aws-access-key-id": "${{ secrets.AWS_ACCESS_KEY_ID }}",
            "aws-secret-access-key": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
            "role-to-assume": f"${{{{ secrets.{OIDC_SECRET} }}}}",
        }


def test_actions_are_pinned_and_checkouts_keep_no_credentials() -> None:
    for name, job in _jobs().items():
        for step in job["steps"]:
            uses = step.get("uses")
            if uses is None:
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{name}: {uses}"
            if uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
    text = WORKFLOW.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_permissions_are_the_least_each_job_needs() -> None:
    workflow = _workflow()
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        expected = {"contents": "read"}
        if name in ("plan", "deploy"):
            expected["id-token"] = "write"  # GitHub's OIDC token, for the role
        assert job["permissions"] == expected, name


# --- the database secrets step -------------------------------------------------------------------


def _script() -> ModuleType:
    path = REPO / ".github" / "scripts" / "put_database_secrets.py"
    spec = importlib.util.spec_from_file_location("put_database_secrets", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BRIEF_ENV = {
    "PG_HOST": "totesys.example.com",
    "PG_PORT": "5432",
    "PG_USER": "project_team_1",
    "PG_PASSWORD": " source secret ",
    "PG_DATABASE": "totesys",
    "PG_HOST_DW": "warehouse.example.com\n",
    "PG_PASSWORD_DW": "warehouse-secret",
    "PG_DATABASE_DW": "postgres",
}


def test_secret_values_follow_the_settings_contract() -> None:
    values = _script().secret_values(BRIEF_ENV)
    assert values["source"] == {
        "PG_HOST": "totesys.example.com",
        "PG_PORT": "5432",
        "PG_USER": "project_team_1",
        "PG_PASSWORD": " source secret ",  # exactly as given
        "PG_DATABASE": "totesys",
    }
    # The warehouse's port and user are the source's: the brief has no secret for them.
    assert values["warehouse"] == {
        "PG_HOST_DW": "warehouse.example.com",
        "PG_PORT_DW": "5432",
        "PG_USER_DW": "project_team_1",
        "PG_PASSWORD_DW": "warehouse-secret",
        "PG_DATABASE_DW": "postgres",
    }
    assert values["connection"] == {
        "conn_type": "postgres",
        "host": "warehouse.example.com",
        "port": 5432,
        "login": "project_team_1",
        "password": "warehouse-secret",
        "schema": "postgres",
        "extra": {"sslmode": "require"},
    }


def test_missing_or_malformed_secrets_are_named_never_shown() -> None:
    script = _script()
    with pytest.raises(ValueError, match="not set: PG_PASSWORD_DW, PG_DATABASE_DW") as missing:
        script.secret_values({**BRIEF_ENV, "PG_PASSWORD_DW": "", "PG_DATABASE_DW": " "})
    assert "source secret" not in str(missing.value)
    with pytest.raises(ValueError, match="PG_PORT must be a port number") as port:
        script.secret_values({**BRIEF_ENV, "PG_PORT": "5432x"})
    assert "5432x" not in str(port.value)


def test_values_reach_the_aws_cli_through_a_private_file_not_its_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    calls: list[tuple[list[str], str, int]] = []

    def fake_run(argv: list[str], **_: Any) -> None:
        path = Path(argv[argv.index("--secret-string") + 1].removeprefix("file://"))
        calls.append((argv, path.read_text(encoding="utf-8"), path.stat().st_mode & 0o777))

    monkeypatch.setattr(script.subprocess, "run", fake_run)
    for name, value in BRIEF_ENV.items():
        monkeypatch.setenv(name, value)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "source_secret_id": {"value": "totes/dev/source-db"},
                "warehouse_secret_id": {"value": "totes/dev/warehouse-db"},
                "airflow_connection_secret_ids": {
                    "value": {"totes_warehouse": "airflow/connections/totes_warehouse"}
                },
                "state_machine_arn": {"value": "arn:aws:states:eu-west-2:1:stateMachine:x"},
            }
        ),
        encoding="utf-8",
    )
    assert script.main([str(outputs)]) == 0
    targets = [argv[argv.index("--secret-id") + 1] for argv, _, _ in calls]
    assert targets == [
        "totes/dev/source-db",
        "totes/dev/warehouse-db",
        "airflow/connections/totes_warehouse",
    ]
    secrets = (BRIEF_ENV["PG_PASSWORD"], BRIEF_ENV["PG_PASSWORD_DW"])
    for argv, value, mode in calls:
        assert not any(secret in " ".join(argv) for secret in secrets), argv
        assert mode == 0o600
        assert any(secret in value for secret in secrets)
    printed = capsys.readouterr()
    assert not any(secret in printed.out + printed.err for secret in secrets)


# --- the README's deploy steps -------------------------------------------------------------------


def _readme_secrets() -> dict[str, str]:
    """The secrets table of the README's Deploy section: name -> what it holds."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Deploy") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: meaning.strip() for name, meaning in rows}


def test_the_readme_secrets_table_matches_the_workflow() -> None:
    documented = _readme_secrets()
    text = WORKFLOW.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", text))
    assert set(documented) == used
    assert "optional" in documented[OIDC_SECRET].lower()
    for name in BRIEF_SECRETS:
        assert "optional" not in documented[name].lower(), name


def test_the_readme_lists_the_briefs_five_steps() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Deploy") :]
    steps = re.findall(r"^(\d)\. (.+)$", section, flags=re.MULTILINE)[:5]
    assert [number for number, _ in steps] == ["1", "2", "3", "4", "5"]
    assert "GitHub secrets" in steps[0][1]
    assert "S3 bucket" in steps[1][1]
    assert "`main.tf`" in steps[2][1]
    assert "terraform > backend > bucket" in steps[2][1]
    assert "on > push > branches" in steps[3][1]
    assert steps[4][1].startswith("Push.")
    # Step 3's file and the placeholder the workflow refuses.
    assert "infra/main.tf" in section
    placeholder = "CHANGE-ME-to-your-terraform-state-bucket"
    assert placeholder in (REPO / "infra" / "main.tf").read_text(encoding="utf-8")
    assert placeholder in text
    assert placeholder in WORKFLOW.read_text(encoding="utf-8")
