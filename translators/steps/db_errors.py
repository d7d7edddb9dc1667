"""Step-level retries for app-database errors that may pass (SPEC 5.5, level "step")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from translators.steps.runtime import StepRuntime

MAX_STEP_RETRIES = 3


@contextmanager
def retry_transient_db_errors(rt: StepRuntime) -> Iterator[None]:
    """Turns a lost connection or a busy database into a Dagster step retry.

    Only `OperationalError`s are transient; a constraint or type error fails at once, as a
    retry would fail the same way. A retried persist step cannot write twice: its marker
    commits with its rows.
    """
    # Imported here, not with the module: checking or building a job imports this module,
    # and a process that never touches an app database should not load the drivers.
    import dagster as dg
    import psycopg
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.OperationalError, psycopg.OperationalError) as error:
        # COPY runs on the raw psycopg connection, whose errors SQLAlchemy does not wrap.
        rt.log.warning(f"{rt.plan.name}: database error, the step will retry: {error}")
        raise dg.RetryRequested(max_retries=MAX_STEP_RETRIES, seconds_to_wait=2) from error
