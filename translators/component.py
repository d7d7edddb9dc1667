"""`WorkflowsComponent`: JSON workflows as a Dagster component (issue 12).

A `defs.yaml` in any `dg` project names a `workflow_defs/` folder; `build_defs` returns
what the code location of this project (translators/definitions.py) builds from it: the
same jobs, schedules, sensors and resources, by the same functions. Only which folder,
which apps, the table store root, the database URL variables and the executor defaults
come from the component's attributes.

    type: translators.component.WorkflowsComponent
    attributes:
      defs_dir: workflow_defs          # relative to this defs.yaml
      apps: [shop]                     # optional: a subset of apps/<app_id>/
      table_store_root: .data/tables   # optional: like $TABLE_STORE_ROOT
      database_url_env: {shop: SHOP_DB_URL}   # names of variables, never URLs
      max_parallel_steps: 2            # optional: for workflows whose settings omit it
      isolation: threads               # optional: the same for settings.isolation
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from dagster.components.scaffold.scaffold import scaffold_with
from pydantic import ConfigDict, Field, field_validator

from resources.app_database import AppDatabaseError, AppDatabaseResource, validate_app_id
from resources.secrets import db_url_passwords, register_secret
from resources.step_outputs import step_output_io_manager
from resources.table_store import TableStoreResource
from translators.component_scaffold import WorkflowsScaffolder
from translators.definitions import build_definitions, check_for_validation, plans_of, select_apps
from translators.errors import one_of
from translators.job_builder import APP_DB_KEY, TABLE_STORE_KEY
from translators.plans import LoadResult

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NamedUrlAppDatabaseResource(AppDatabaseResource):
    """The app databases, where some apps' URLs come from variables the component names."""

    url_env: dict[str, str] = Field(
        default_factory=dict,
        description="app id -> name of the environment variable holding its database URL",
    )

    def url_for(self, app_id: str) -> str:
        variable = self.url_env.get(app_id)
        if variable is None:
            return super().url_for(app_id)
        validate_app_id(app_id)
        url = os.environ.get(variable)
        if not url:
            raise AppDatabaseError(
                f"app {app_id!r}: environment variable {variable} (database_url_env of the "
                "workflows component) is unset; expected a database URL in it"
            )
        # APP_DB_URL* passwords are registered per run; a variable of another name must be
        # too, or a driver error quoting the URL would show it.
        for password in db_url_passwords(url):
            register_secret(password)
        return re.sub(r"^postgres://", "postgresql://", url)


@scaffold_with(WorkflowsScaffolder)
class WorkflowsComponent(dg.Component, dg.Model, dg.Resolvable):
    """JSON workflows (services, apps, workflows, schedules) as Dagster jobs, schedules,
    sensors and resources; `workflows check` and `dg check defs` report the same problems."""

    # A URL given where a variable name belongs may hold a password: errors do not echo it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    defs_dir: str = Field(
        default="workflow_defs",
        description="The definitions folder (services/, apps/<app_id>/...), relative to "
        "this defs.yaml.",
    )
    apps: list[str] | None = Field(
        default=None, description="Only these apps of the folder; default: every app."
    )
    table_store_root: str | None = Field(
        default=None,
        description="Folder of the step tables; default $TABLE_STORE_ROOT, else "
        "$WORKFLOWS_DATA_DIR/tables.",
    )
    database_url_env: dict[str, str] = Field(
        default_factory=dict,
        description="app id -> NAME of the environment variable holding that app's "
        "database URL (never the URL itself); other apps use APP_DB_URL__<APP_ID>, "
        "APP_DB_URL or the embedded SQLite file.",
    )
    max_parallel_steps: Annotated[int, Field(ge=1, le=64)] | None = Field(
        default=None,
        description="settings.maxParallelSteps of the workflows that do not set it.",
    )
    isolation: Literal["threads", "process"] | None = Field(
        default=None, description="settings.isolation of the workflows that do not set it."
    )

    @field_validator("database_url_env")
    @classmethod
    def _names_not_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for app_id, name in value.items():
            if not ENV_NAME.match(name):
                # The value may be a URL with a password: do not echo it.
                raise ValueError(
                    f"database_url_env[{app_id!r}] is not an environment variable name; "
                    "expected a NAME like SHOP_DB_URL (letters, digits, _), never the URL"
                )
        return value

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        loaded = self.workflow_plans(context.path)
        check_for_validation(loaded)
        return build_definitions(loaded, resources=self.resources())

    def workflow_plans(self, component_dir: Path) -> LoadResult:
        """The checked plans of the folder, narrowed to `apps`, with the executor defaults."""
        loaded = plans_of(component_dir / self.defs_dir)
        if self.apps is not None:
            known = sorted(p.name for p in (loaded.defs_dir / "apps").glob("*") if p.is_dir())
            unknown = [app for app in self.apps if app not in known]
            if unknown:
                raise ValueError(
                    f"WorkflowsComponent apps: no app {unknown[0]!r} in "
                    f"{loaded.defs_dir / 'apps'}; expected {one_of(known, unknown[0])}"
                )
            loaded = select_apps(loaded, self.apps)
        return self._with_defaults(loaded)

    def resources(self) -> dict[str, Any]:
        """The resources this component's attributes change; the rest are the location's."""
        return {
            TABLE_STORE_KEY: TableStoreResource(root=self.table_store_root),
            # Step outputs follow the tables: into the bucket when the root is one.
            "io_manager": step_output_io_manager(self.table_store_root),
            APP_DB_KEY: NamedUrlAppDatabaseResource(url_env=self.database_url_env),
        }

    def _with_defaults(self, loaded: LoadResult) -> LoadResult:
        defaults = {
            key: value
            for key, value in (
                ("max_parallel_steps", self.max_parallel_steps),
                ("isolation", self.isolation),
            )
            if value is not None
        }
        if not defaults:
            return loaded
        workflows = []
        for workflow in loaded.workflows:
            settings = workflow.spec.settings
            # Only what the file leaves out: a workflow's own settings win.
            update = {k: v for k, v in defaults.items() if k not in settings.model_fields_set}
            spec = workflow.spec.model_copy(update={"settings": settings.model_copy(update=update)})
            workflows.append(replace(workflow, spec=spec))
        return replace(loaded, workflows=workflows)
