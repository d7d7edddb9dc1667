"""Issue 11: a step kind is one module and one registration line. The tiny `echo` kind
below is all of it: its model, its run and its `StepKind`; `register_step_kind` is the
one line. A workflow using it is parsed, checked (a bad echo is a file#pointer problem)
and run through Dagster (its row is in the step table, and a sql step after it reads it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pyarrow.parquet as pq
import pytest
from pydantic import Field

from tests.support.jobs import load, run_job, write_defs
from translators.loader import load_definitions
from translators.spec.base import SpecModel
from translators.spec.steps import BaseStepSpec
from translators.steps.kind import StepKind
from translators.steps.registry import register_step_kind, unregister_step_kind
from translators.steps.runtime import StepResult, StepRuntime
from translators.templates import render

# ------------------------------------------------------------------ the kind: one module


class EchoSpec(SpecModel):
    text: Annotated[str, Field(min_length=1)] = Field(description="The text of the one row.")


class EchoStepSpec(BaseStepSpec):
    """echo: a one-row table with the (rendered) text."""

    kind: ClassVar[str] = "echo"
    echo: EchoSpec
    output_table: Annotated[str, Field(min_length=1)] = Field(description="The table.")


def run_echo(spec: EchoStepSpec, rt: StepRuntime) -> StepResult:
    with rt.open_writer({"text": "VARCHAR"}) as writer:
        writer.write_records([{"text": str(render(spec.echo.text, rt.variables))}])
    return StepResult(writer.handle, {"rows": 1})


ECHO = StepKind(
    name="echo",
    spec=EchoStepSpec,
    keys=("echo",),
    badge="echo",
    template_sites=("/echo/text",),
    fixed_schema={"text": "VARCHAR"},
    describe=lambda workflow, step, catalog: f"Echoes into `{step.output_table}`.",
    run=run_echo,
)

# ------------------------------------------------------------------ the tests


@pytest.fixture
def echo_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WORKFLOWS_PLAN_CACHE", "off")  # plans of this session's kinds only
    register_step_kind(ECHO)  # the one registration line
    yield
    unregister_step_kind("echo")


WORKFLOW = {
    "variables": {"who": {"type": "param", "default": "world"}},
    "steps": [
        {"echo": {"text": "hello {{var.who}}"}, "outputTable": "x"},
        {"sql": "SELECT upper(text) AS shout FROM x", "outputTable": "loud"},
    ],
}


def _table(result: Any, step: str) -> list[dict[str, Any]]:
    handle = result.output_for_node(step)
    return pq.read_table(handle.path).to_pylist()


def test_an_echo_workflow_is_checked_and_runs_through_dagster(
    tmp_path: Path, echo_kind: None
) -> None:
    loaded, defs = load(write_defs(tmp_path / "defs", "demo", {"hello": WORKFLOW}))
    step = loaded.workflows[0].steps[0]
    assert (step.kind, step.output_schema) == ("echo", {"text": "VARCHAR"})
    assert loaded.workflows[0].steps[1].output_schema == {"shout": "VARCHAR"}  # bound on it

    result = run_job(defs, "demo__hello", {"who": "kinds"})
    assert result.success
    assert _table(result, "x") == [{"text": "hello kinds"}]
    assert _table(result, "loud") == [{"shout": "HELLO KINDS"}]
    op = defs.resolve_job_def("demo__hello").graph.node_named("x").definition
    assert op.tags["kind"] == "echo"
    assert op.description.startswith("Echoes into `x`.")


@pytest.mark.parametrize(
    ("step", "pointer", "words"),
    [
        ({"echo": {"text": ""}, "outputTable": "x"}, "/steps/0/echo/text", "at least 1"),
        ({"echo": {"txt": "hi"}, "outputTable": "x"}, "/steps/0/echo/txt", "unknown key"),
        ({"echo": {"text": "{{var.nope}}"}, "outputTable": "x"}, "/steps/0/echo/text", "nope"),
        (
            {"echo": {"text": "hi"}, "outputTable": "x", "dependsOn": ["y"]},
            "/steps/0/dependsOn/0",
            "'y'",
        ),
    ],
)
def test_a_bad_echo_is_a_problem_at_its_pointer(
    tmp_path: Path, echo_kind: None, step: dict, pointer: str, words: str
) -> None:
    loaded = load_definitions(write_defs(tmp_path / "defs", "demo", {"bad": {"steps": [step]}}))
    at = [str(p) for p in loaded.problems if p.pointer == pointer]
    assert at and words in at[0], "\n".join(map(str, loaded.problems))
    assert at[0].startswith(f"apps/demo/workflows/bad.json#{pointer}")


def test_without_registration_echo_is_no_step_kind(tmp_path: Path) -> None:
    step = {"echo": {"text": "hi"}, "outputTable": "x"}
    loaded = load_definitions(write_defs(tmp_path / "defs", "demo", {"bad": {"steps": [step]}}))
    assert any("cannot tell the step's kind" in str(p) for p in loaded.problems)


def test_every_pagination_style_of_the_spec_has_a_row_in_the_table() -> None:
    from translators.steps.pagination import PAGINATION_STYLES, union_models

    assert union_models() == {style.spec for style in PAGINATION_STYLES.values()}
