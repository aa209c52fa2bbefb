"""A fresh PostgreSQL database per test, on the server in ALGO_PLATFORM_TEST_PG_URL."""

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[2]


def _admin_connection(url: str):
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=3)
    connection.autocommit = True
    return connection


@pytest.fixture
def postgres_home(tmp_path, monkeypatch):
    """A DAGSTER_HOME with deploy/dagster.yaml, pointed at a new empty database; env vars set."""
    url = os.environ.get("ALGO_PLATFORM_TEST_PG_URL", DEFAULT_URL)
    try:
        admin = _admin_connection(url)
    except Exception as error:  # any connection failure means "no server here"
        reason = f"PostgreSQL not reachable at {url} ({str(error).strip()}); set ALGO_PLATFORM_TEST_PG_URL"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    database = f"algo_platform_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    parsed = urlparse(url)
    env = {
        "DAGSTER_PG_HOST": parsed.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USER": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    # Step logs stay local here: this is about PostgreSQL (test_deploy.py checks the S3 log config).
    config.pop("compute_logs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield home
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.close()
