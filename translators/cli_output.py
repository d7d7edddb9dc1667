"""Text that `workflows list`, `check` and `explain` print."""

from __future__ import annotations

import sys

from translators.loader import LoadResult, StepPlan, WorkflowPlan, load_definitions
from translators.location import defs_dir
from translators.steps.registry import kind_of, split_dependencies


def load_all() -> LoadResult:
    """Every definition under the defs folder (`$WORKFLOW_DEFS_DIR`, else workflow_defs/)."""
    return load_definitions(defs_dir())


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
            inferred = kind_of(step).infers_schema and not step.spec.output_schema
            if inferred and step.output_schema:
                columns = ", ".join(f"{c} {t}" for c, t in step.output_schema.items())
                lines.append(f"{workflow.file}#{step.pointer}: {step.output_table}({columns})")
    return ["inferred schemas:", *("  " + line for line in lines)] if lines else []


# When a step is skipped, as alternatives: each a set of branches that are all false.
SkipRule = list[frozenset[str]]


def skip_rules(workflow: WorkflowPlan) -> dict[str, SkipRule]:
    """For each step, which false branches skip it, as the run decides (README, Waits).

    A step is skipped when an input it needs is missing: the output of a false branch,
    or of a skipped step. A wait's ordering-only input fans in from every earlier step
    and counts as missing only when *all* of them are, so one false branch before a wait
    does not skip it or what follows.
    """
    missing: dict[str, SkipRule] = {}
    rules: dict[str, SkipRule] = {}
    for step in workflow.steps:
        direct, ordering = split_dependencies(workflow, step)
        rule = [term for up in direct for term in missing[up]]
        if ordering:
            rule += _all_missing([missing[up] for up in ordering])
        rules[step.name] = _minimal(rule)
        own = [frozenset({step.name})] if kind_of(step).skips_dependents else []
        missing[step.name] = _minimal(rules[step.name] + own)
    return rules


def _all_missing(sources: list[SkipRule]) -> SkipRule:
    """When every one of `sources` is missing: one term of each, combined."""
    combined: SkipRule = [frozenset()]
    for source in sources:
        combined = _minimal([a | b for a in combined for b in source])
    return combined


def _minimal(rule: SkipRule) -> SkipRule:
    """Without duplicates and without terms that a smaller term already implies."""
    unique = list(dict.fromkeys(rule))
    return [t for t in unique if not any(o < t for o in unique)]


def _skip_text(rule: SkipRule) -> list[str]:
    single = [next(iter(term)) for term in rule if len(term) == 1]
    lines = [f"skipped when false: {', '.join(single)}"] if single else []
    lines += [f"skipped when all false: {' and '.join(sorted(t))}" for t in rule if len(t) > 1]
    return lines


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
    skips = skip_rules(workflow)
    for step in workflow.steps:
        table = f" -> table {step.output_table}" if step.output_table else ""
        lines.append(f"  {step.index + 1:>2}. {step.name} [{step.kind}]{table}  #{step.pointer}")
        lines += _after_lines(workflow, step)
        if step.reads:
            reads = ", ".join(f"{t} (from {s})" for t, s in step.reads.items())
            lines.append(f"      reads: {reads}")
        lines += [f"      {text}" for text in _skip_text(skips[step.name])]
    edges = [f"{up} -> {step.name}" for step in workflow.steps for up in step.depends_on]
    lines += ["", "edges:", *(f"  {edge}" for edge in edges or ["(none: all steps independent)"])]
    return lines


def _after_lines(workflow: WorkflowPlan, step: StepPlan) -> list[str]:
    direct, ordering = split_dependencies(workflow, step)
    lines = [f"      after: {', '.join(direct)}"] if direct else []
    if ordering:
        # Only order: a wait still runs when some of these are skipped (README, Waits).
        lines.append(f"      after (skipped only if all are skipped): {', '.join(ordering)}")
    return lines


def unknown_workflow(ref: str, loaded: LoadResult) -> int:
    """Says why `ref` names no runnable workflow (its problems, or the known ones); 1."""
    broken = [b for b in loaded.broken if f"{b.app_id}/{b.stem}" == ref]
    if broken:
        print(f"{ref} has definition problems:", file=sys.stderr)
        for problem in broken[0].problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    known = ", ".join(sorted(f"{w.app_id}/{w.stem}" for w in loaded.workflows)) or "none"
    print(f"unknown workflow '{ref}'; expected one of: {known}", file=sys.stderr)
    return 1
