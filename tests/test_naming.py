"""One name sanitiser (issue 11): `translators.naming.dagster_name` makes every name that
must be an identifier (ops, jobs, schedules, resource keys, SQL parameters); environment
variable names have one rule of their own (`resources.env_names.env_word`), and any other
hand-written character rule says in a comment why it differs."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from resources.app_database import AppDatabaseResource
from resources.env_names import app_db_url_variable, env_word
from translators.naming import dagster_name
from translators.templates import param_name, sql_with_params

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A character class that replaces what a name may not hold: `[^A-Za-z0-9...]`, or a
# per-character test (`isalnum`, `isspace`) that builds a name.
_HAND_WRITTEN = re.compile(
    r"\[\^[A-Za-z0-9_.\-~]*A-Za-z0-9|\[\^a-zA-Z0-9|isalnum\(|\"_\" if \w+\.isspace\("
)
_THE_SANITISERS = {Path("translators/naming.py"), Path("resources/env_names.py")}


@pytest.mark.parametrize("name", ["since", "org-id", "3x", "type", "from", "a.b c", ""])
def test_sql_parameters_are_dagster_names(name: str) -> None:
    assert param_name(name) == dagster_name(name)


def test_a_reserved_variable_name_binds_as_its_dagster_name() -> None:
    sql, names = sql_with_params("SELECT {{var.type}} AS t, {{var.org-id}} AS o")
    assert (sql, names) == ("SELECT $k_type AS t, $org_id AS o", ["type", "org-id"])
    values = {"type": "full", "org-id": 7}
    row = duckdb.sql(sql, params={param_name(n): values[n] for n in names}).fetchall()
    assert row == [("full", 7)]


def test_environment_names_are_upper_case_words() -> None:
    assert env_word("demo-shop") == "DEMO_SHOP"
    assert env_word("my-crm.v2") == "MY_CRM_V2"
    assert app_db_url_variable("demo-shop") == "APP_DB_URL__DEMO_SHOP"


def test_the_app_database_reads_the_variable_env_names_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_DB_URL__DEMO_SHOP", "sqlite:///elsewhere.sqlite")
    assert AppDatabaseResource().url_for("demo-shop") == "sqlite:///elsewhere.sqlite"


def test_no_other_hand_written_sanitiser_without_a_reason() -> None:
    """Every other character rule for names carries a comment `Not dagster_name:` saying
    why it must differ (a file name, a pool name operators type, ...)."""
    unexplained = []
    for package in ("translators", "resources"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT)
            if relative in _THE_SANITISERS:
                continue
            lines = path.read_text().splitlines()
            for number, line in enumerate(lines, start=1):
                if not _HAND_WRITTEN.search(line):
                    continue
                context = "\n".join(lines[max(0, number - 6) : number])
                if "Not dagster_name:" not in context:
                    unexplained.append(f"{relative}:{number}: {line.strip()}")
    assert not unexplained, "name sanitisers besides naming.dagster_name:\n" + "\n".join(
        unexplained
    )
