"""Write the database settings from the GitHub secrets into the Secrets Manager secrets that
Terraform created without values, so that no password ever passes through Terraform's plan,
state or outputs, nor through a command line or the job log.

Run by the deploy workflow after ``terraform apply``, with the brief's secrets in the
environment. The secret ids come from ``terraform output -json`` (a file named by the only
argument). Prints only which secrets were written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The product brief's database secrets. The warehouse's port and user are not among them: the
# warehouse uses the source's (PG_PORT_DW and PG_USER_DW default to PG_PORT and PG_USER).
SOURCE = ("PG_HOST", "PG_PORT", "PG_USER", "PG_PASSWORD", "PG_DATABASE")
WAREHOUSE = ("PG_HOST_DW", "PG_PASSWORD_DW", "PG_DATABASE_DW")
AIRFLOW_WAREHOUSE_CONNECTION = "totes_warehouse"


def secret_values(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What each secret holds: the source's and the warehouse's PG_* JSON, and the Airflow
    connection to the warehouse. Raises ValueError naming (never showing) what is wrong."""
    missing = [name for name in (*SOURCE, *WAREHOUSE) if not env.get(name, "").strip()]
    if missing:
        raise ValueError(f"GitHub secrets not set: {', '.join(missing)}")
    port = env["PG_PORT"].strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("GitHub secret PG_PORT must be a port number")
    # Passwords are taken exactly as given; the other values lose stray spaces and newlines.
    source = {name: env[name] if name == "PG_PASSWORD" else env[name].strip() for name in SOURCE}
    warehouse = {
        "PG_HOST_DW": env["PG_HOST_DW"].strip(),
        "PG_PORT_DW": port,
        "PG_USER_DW": source["PG_USER"],
        "PG_PASSWORD_DW": env["PG_PASSWORD_DW"],
        "PG_DATABASE_DW": env["PG_DATABASE_DW"].strip(),
    }
    connection = {
        "conn_type": "postgres",
        "host": warehouse["PG_HOST_DW"],
        "port": int(port),
        "login": warehouse["PG_USER_DW"],
        "password": warehouse["PG_PASSWORD_DW"],
        "schema": warehouse["PG_DATABASE_DW"],
        "extra": {"sslmode": "require"},
    }
    return {"source": source, "warehouse": warehouse, "connection": connection}


def secret_ids(outputs: Mapping[str, Any]) -> dict[str, str]:
    """Which secret each value goes to, from ``terraform output -json``."""
    return {
        "source": outputs["source_secret_id"]["value"],
        "warehouse": outputs["warehouse_secret_id"]["value"],
        "connection": outputs["airflow_connection_secret_ids"]["value"][
            AIRFLOW_WAREHOUSE_CONNECTION
        ],
    }


def put(secret_id: str, value: Mapping[str, Any]) -> None:
    """One put-secret-value; the value goes through a private file, not the command line."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "value.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(value), encoding="utf-8")
        subprocess.run(
            [
                "aws",
                "secretsmanager",
                "put-secret-value",
                "--secret-id",
                secret_id,
                "--secret-string",
                f"file://{path}",
                "--output",
                "text",
                "--query",
                "Name",
            ],
            check=True,
        )


def main(argv: list[str]) -> int:
    (outputs_file,) = argv
    outputs = json.loads(Path(outputs_file).read_text(encoding="utf-8"))
    try:
        values = secret_values(os.environ)
    except ValueError as error:
        print(f"::error::{error}", file=sys.stderr)
        return 1
    for key, secret_id in secret_ids(outputs).items():
        put(secret_id, values[key])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
