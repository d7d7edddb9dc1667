"""Text that `workflows list`, `check` and `explain` print."""

from __future__ import annotations

from translators.loader import LoadResult, WorkflowPlan
from translators.spec import BranchStepSpec


def list_lines(loaded: LoadResult) -> list[str]:
    lines: list[str] = []
    apps = sorted({w.app_id for w in loaded.workflows} | {b.app_id for b in loaded.broken})
    for app_id in apps:
        lines.append(f"app {app_id}")
        for workflow in sorted(loaded.workflows, key=lambda w: w.stem):
            if workflow.app_id == app_id:
                lines.append(f"  workflow {workflow.stem:<32} job {workflow.job_name}")
        for broken in loaded.broken:
            if broken.app_id == app_id:
                lines.append(
                    f"  workflow {broken.stem:<32} BROKEN ({len(broken.problems)} problems)"
                )
        for schedule in loaded.schedules:
            if schedule.app_id == app_id:
                spec = schedule.spec
                lines.append(
                    f"  schedule {spec.name:<32} {spec.cron} {spec.timezone} -> {schedule.workflow}"
                )
    lines.append(f"services: {', '.join(sorted(loaded.services)) or 'none'}")
    return lines


def schema_lines(loaded: LoadResult) -> list[str]:
    """The output schemas `check` infers for sql steps (SPEC 3, Decision)."""
    lines: list[str] = []
    for workflow in loaded.workflows:
        for step in workflow.steps:
            if step.kind == "sql" and step.output_schema and not step.spec.output_schema:
                columns = ", ".join(f"{c} {t}" for c, t in step.output_schema.items())
                lines.append(f"{workflow.file}#{step.pointer}: {step.output_table}({columns})")
    return ["inferred schemas:", *("  " + line for line in lines)] if lines else []


def skip_sources(workflow: WorkflowPlan) -> dict[str, list[str]]:
    """For each step, the branches whose false value skips it (directly or transitively)."""
    by_name = {step.name: step for step in workflow.steps}
    sources: dict[str, list[str]] = {}
    for step in workflow.steps:
        found: list[str] = []
        for up in step.depends_on:
            if isinstance(by_name[up].spec, BranchStepSpec):
                found.append(up)
            found.extend(sources.get(up, []))
        sources[step.name] = list(dict.fromkeys(found))
    return sources


def explain_lines(workflow: WorkflowPlan) -> list[str]:
    settings = workflow.spec.settings
    lines = [
        f"workflow {workflow.app_id}/{workflow.stem}  ({workflow.file})",
        f"job      {workflow.job_name}",
        f"executor {'in-process' if settings.max_parallel_steps == 1 else 'multiprocess'}, "
        f"at most {settings.max_parallel_steps} step(s) at once",
        "",
        "steps (op = step name; every op also takes resolve_variables):",
    ]
    skips = skip_sources(workflow)
    for step in workflow.steps:
        table = f" -> table {step.output_table}" if step.output_table else ""
        lines.append(f"  {step.index + 1:>2}. {step.name} [{step.kind}]{table}  #{step.pointer}")
        if step.depends_on:
            lines.append(f"      after: {', '.join(step.depends_on)}")
        if step.reads:
            reads = ", ".join(f"{t} (from {s})" for t, s in step.reads.items())
            lines.append(f"      reads: {reads}")
        if skips[step.name]:
            lines.append(f"      skipped when false: {', '.join(skips[step.name])}")
    edges = [f"{up} -> {step.name}" for step in workflow.steps for up in step.depends_on]
    lines += ["", "edges:", *(f"  {edge}" for edge in edges or ["(none: all steps independent)"])]
    return lines
