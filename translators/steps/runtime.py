"""What a step's code gets at run time, independent of how Dagster delivers it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resources.secrets import redact

if TYPE_CHECKING:
    from resources.app_database import AppDatabaseResource
    from resources.service import ServiceResource
    from resources.table_store import TableHandle, TableStoreResource, TableWriter
    from translators.app_access import AppAccess
    from translators.plans import StepPlan
    from translators.spec import ServiceSpec


@dataclass
class StepResult:
    """The outcome of one step: its table (if any) and what to show in Dagster.

    `emit=False` means the step's output is deliberately not produced: a false branch,
    whose dependents Dagster then skips (SPEC 3.5).
    """

    handle: TableHandle | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    emit: bool = True
    # An app table this step wrote: reported as a materialization of that asset (issue 9).
    materialized: TableWritten | None = None


@dataclass
class TableWritten:
    """An app table a step wrote, and what to show on its asset's materialization."""

    app_id: str
    table: str
    columns: dict[str, str]  # name -> DuckDB type, as the table has them now
    row_count: int | None  # rows in the table now (None when counting failed)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepRuntime:
    """One step's run: its plan, the run's variables and upstream tables, and resources."""

    plan: StepPlan
    job_name: str
    run_id: str
    # The first run of a re-execution chain: persist markers are keyed by it so a
    # re-executed or retried step never writes twice (SPEC 3.4).
    lineage: str
    variables: dict[str, Any]
    tables: dict[str, TableHandle]
    table_store: TableStoreResource
    app_db: AppDatabaseResource
    services: dict[str, ServiceResource]
    log: logging.Logger | Any
    # The app databases this step may open (SPEC 8); see `AppAccess.ensure`.
    app_access: AppAccess
    catalog: dict[str, ServiceSpec] = field(default_factory=dict)
    inline_wait_max_seconds: int = 300

    def open_writer(self, schema: dict[str, str] | None) -> TableWriter:
        """A writer for this step's output table (run-scoped Parquet).

        A branch without `outputTable` still writes its one-row table, named by the step.
        """
        table_name = self.plan.output_table or self.plan.name
        return self.table_store.open_writer(self.run_id, self.plan.name, table_name, schema)

    def table(self, name: str) -> TableHandle:
        """An upstream table this step reads, by its outputTable name."""
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(
                f"step {self.plan.name}: table '{name}' was not produced upstream"
            ) from None

    def service(self, name: str) -> ServiceResource:
        return self.services[name]


class RedactingLog:
    """A step's log (Dagster's `context.log`) that masks secrets in every message.

    Steps log error texts (a skipped row's database error, a retried connection error),
    which may quote a value the run must not show; `%`-style arguments are merged first.
    """

    def __init__(self, log: logging.Logger | Any) -> None:
        self._log = log

    def _emit(self, level: str, msg: object, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        getattr(self._log, level)(redact(text), **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("debug", msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("info", msg, *args, **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("warning", msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("error", msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("exception", msg, *args, **kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit("critical", msg, *args, **kwargs)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """At a numeric level (`logging.WARNING`), as the client's lines come."""
        text = str(msg) % args if args else str(msg)
        self._log.log(level, redact(text), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)
