"""Names inside environment variable names: `APP_DB_URL__<APP_ID>`, `SERVICE_<NAME>_BASE_URL`
(README, "Environment").

Not `translators.naming.dagster_name`: these names are a documented contract that operators
type, upper-cased, with no `k_` prefix for reserved words; ids and service names are already
`[A-Za-z0-9][A-Za-z0-9_-]*`, so in practice only `-` becomes `_`.
"""

from __future__ import annotations

import re


def env_word(name: str) -> str:
    """`demo-shop` -> `DEMO_SHOP`: upper-cased, every character other than [A-Za-z0-9_] `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def app_db_url_variable(app_id: str) -> str:
    """The variable with the database URL of one app, before `APP_DB_URL`."""
    return f"APP_DB_URL__{env_word(app_id)}"
