"""Which app databases a workflow reaches (SPEC 8).

A workflow reaches the database of the app whose folder holds it, and of the app ids that
folder lists in `apps/<app_id>/app.json` (`{"databases": ["other-app"]}`, Extension).
Any other `appId` is refused: at load time when it is literal (`step_checks`), and before
any read or write when it comes from a template (`AppAccess.ensure`, called by the
database steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from resources.secrets import redact
from translators.errors import Problem
from translators.spec import AppSpec
from translators.validation_errors import validation_problems

APP_FILE = "app.json"

ReadJson = Callable[[Path, str], tuple[Any, Problem | None]]


class AppAccessError(Exception):
    """A step's appId names a database its workflow may not reach."""


@dataclass(frozen=True)
class AppAccess:
    """The databases one app's workflows reach, and the problems of its app.json."""

    app_id: str
    databases: tuple[str, ...] = ()  # listed in app.json, besides the app's own
    problems: list[Problem] = field(default_factory=list)

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset({self.app_id, *self.databases})

    def refusal(self, app_id: str) -> tuple[str, str] | None:
        """(message, expected) when `app_id` is out of reach, else None."""
        if app_id in self.allowed:
            return None
        others = ", ".join(repr(a) for a in self.databases)
        message = (
            f"appId {app_id!r} is not a database the app {self.app_id!r} may reach; list it "
            f'in "databases" in apps/{self.app_id}/{APP_FILE} to allow it'
        )
        return message, f"{self.app_id!r} (the app's own)" + (f" or {others}" if others else "")

    def ensure(self, step: str, app_id: str) -> str:
        """`app_id`, or AppAccessError naming the step, the appId and the allowed ones;
        called before a step opens any app database."""
        refused = self.refusal(app_id)
        if refused is None:
            return app_id
        message, expected = refused
        raise AppAccessError(redact(f"step {step}: {message}; expected {expected}"))


def read_app_access(app_dir: Path, folder: str, read_json: ReadJson) -> AppAccess:
    """The access of the app in `app_dir` (`folder`: the same, relative to the definitions
    folder). Without app.json an app reaches only its own database; so it does when its
    app.json has problems, which are in `problems`. `read_json` is the loader's reader."""
    app_id, path, file = app_dir.name, app_dir / APP_FILE, f"{folder}/{APP_FILE}"
    if not path.is_file():
        return AppAccess(app_id)
    raw, problem = read_json(path, file)
    if problem is not None:
        return AppAccess(app_id, problems=[problem])
    try:
        spec = AppSpec.model_validate(raw)
    except ValidationError as exc:
        return AppAccess(app_id, problems=validation_problems(exc, raw, AppSpec, file))
    return AppAccess(app_id, tuple(dict.fromkeys(spec.databases)))
