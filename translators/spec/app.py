"""An app's `app.json` (SPEC 8, Extension): the other apps whose databases it reaches."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from translators.spec.base import SpecModel

# The app id pattern of SPEC 8; `validation_errors` turns a mismatch into a plain hint.
APP_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"

AppIdText = Annotated[str, Field(pattern=APP_ID_REGEX)]


class AppSpec(SpecModel):
    """`apps/<app_id>/app.json`. Optional: without it an app reaches only its own database."""

    databases: list[AppIdText] = Field(
        default_factory=list,
        description="App ids whose databases this app's workflows may read and write "
        "(importFromDatabase, persistToDatabase), besides the app's own.",
    )
