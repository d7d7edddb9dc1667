"""`workflows check --db`: check the database steps against the app databases (SPEC 7).

Tables and columns exist, `upsertKey` has a unique constraint, required columns are
mapped, and mapped types are compatible. The app id comes from the step's `appId` with
params at their defaults; an `appId` that needs a param without a default is checked
against the workflow's own app's database (SPEC 8), and one that renders to an app the
workflow may not reach is a problem (its database is not opened).
"""

from __future__ import annotations

from translators.errors import Problem
from translators.loader import LoadResult
from translators.steps.registry import kind_of


def check_against_databases(loaded: LoadResult) -> list[Problem]:
    """The problems of every step whose kind checks itself against a database."""
    from resources.app_database import AppDatabaseResource  # opened only by --db

    problems: list[Problem] = []
    app_db = AppDatabaseResource()
    for workflow in loaded.workflows:
        for step in workflow.steps:
            check = kind_of(step).check_database
            if check is not None:
                problems += check(app_db, workflow, step)
    return problems
