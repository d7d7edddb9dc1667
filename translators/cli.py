"""`workflows`: check, list, run and explain workflow definitions (SPEC 10)."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from translators.cli_output import (
    explain_lines,
    list_lines,
    load_all,
    schema_lines,
    unknown_workflow,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflows",
        description="Validate, inspect and run JSON workflow definitions as Dagster jobs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate every definition; exit 1 on problems")
    check.add_argument("defs_dir", nargs="?", type=Path, help="default: workflow_defs/")
    check.add_argument("--db", action="store_true", help="also check the app databases")

    listing = sub.add_parser("list", help="apps, workflows with their job names, schedules")
    listing.add_argument("defs_dir", nargs="?", type=Path, help="default: workflow_defs/")

    run = sub.add_parser("run", help="run a workflow as a Dagster job and wait for it")
    run.add_argument("workflow", metavar="APP_ID/WORKFLOW", help="e.g. demo-shop/syncOrders")
    run.add_argument("--defs", type=Path, help="definitions folder (default: workflow_defs/)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a workflow param; V is parsed as JSON when it parses (repeatable)",
    )
    run.add_argument(
        "--idempotency-key", help="refuse to start while a run with this key is active"
    )

    runs = sub.add_parser("runs", help="recent runs: status, run id, logical time, reason")
    runs.add_argument("workflow", nargs="?", metavar="APP_ID/WORKFLOW")
    runs.add_argument("--defs", type=Path, help="definitions folder (default: workflow_defs/)")
    resume = sub.add_parser(
        "resume", help="continue a FAILED run from failure, or a PAUSED one when due"
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--now", action="store_true", help="(for PAUSED runs) skip the wait")
    resume.add_argument("--defs", type=Path, help="definitions folder (default: workflow_defs/)")

    housekeeping = sub.add_parser("housekeeping", help="remove expired tables and checkpoints")
    housekeeping.add_argument("--dry-run", action="store_true", help="only say what would go")

    explain = sub.add_parser("explain", help="the DAG: steps, ops, edges and skip rules")
    explain.add_argument("workflow", metavar="APP_ID/WORKFLOW")
    explain.add_argument("--defs", type=Path, help="definitions folder (default: workflow_defs/)")

    state = sub.add_parser("state", help="lastValue variables per param set: show or reset")
    state.add_argument("action", choices=["show", "reset"])
    state.add_argument("workflow", metavar="APP_ID/WORKFLOW")
    state.add_argument("--param", action="append", default=[], metavar="K=V", help="one set")
    state.add_argument("--defs", type=Path, help="definitions folder (default: workflow_defs/)")

    schema = sub.add_parser("schema", help="write JSON Schemas of the files, for editors")
    schema.add_argument("out_dir", nargs="?", type=Path, metavar="DIR", help="default: schemas/")

    port = sub.add_parser("import-ts", help="convert TypeScript JobDefinitions into an app folder")
    port.add_argument("src", type=Path, metavar="SRC", help="the app root, a folder or a .ts file")
    port.add_argument("dest", type=Path, metavar="DEST", help="<defs>/apps/<app_id>")
    return parser


def entry_point() -> NoReturn:
    """`workflows` and `python -m translators`: `main`, then a quick exit.

    Tearing the interpreter down (the modules of Dagster, DuckDB and Arrow, and a heap of
    ~200 MB) took 0.8 s after `workflows run` had printed its last line (issue 8 P6).
    The exit handlers still run (logging, Dagster's, temporary folders); only that
    teardown is skipped. An exception leaves the normal way.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    defs = getattr(args, "defs_dir", None) or getattr(args, "defs", None)
    if defs is not None:
        # Step processes rebuild the definitions from the environment, so it must say where.
        os.environ["WORKFLOW_DEFS_DIR"] = str(Path(defs).resolve())
    if args.command == "check":
        return _check(args.db)
    if args.command == "list":
        return _print(list_lines(load_all()))
    if args.command == "explain":
        return _explain(args.workflow)
    if args.command == "import-ts":
        from translators.cli_import_ts import import_ts

        return import_ts(args.src, args.dest)
    if args.command == "state":
        from translators.cli_state import state

        return state(args.action, args.workflow, args.param)
    if args.command == "schema":
        from translators.cli_schema import write_schemas

        return write_schemas(args.out_dir)
    if args.command == "housekeeping":
        from translators.housekeeping import cli as housekeeping

        return housekeeping(args.dry_run)
    if args.command in ("runs", "resume"):
        from translators import cli_runs

        if args.command == "runs":
            return cli_runs.list_runs(args.workflow)
        return cli_runs.resume(args.run_id, args.now)
    from translators.cli_run import run_workflow

    return run_workflow(args.workflow, args.param, args.idempotency_key)


def _print(lines: list[str]) -> int:
    print("\n".join(lines))
    return 0


def _check(with_db: bool) -> int:
    loaded = load_all()
    problems = list(loaded.problems)
    if with_db and loaded.ok:
        from translators.db_checks import check_against_databases

        problems += check_against_databases(loaded)
    from translators.wait_checks import long_wait_warnings

    for warning in long_wait_warnings(loaded):  # allowed, so exit 0 stays
        print(warning)
    if problems:
        for problem in problems:
            print(problem)
        print(f"\n{len(problems)} problem(s) found.", file=sys.stderr)
        return 1
    print("\n".join(schema_lines(loaded)))
    print(
        f"OK: {len(loaded.workflows)} workflow(s), {len(loaded.schedules)} schedule(s), "
        f"{len(loaded.services)} service(s)."
    )
    return 0


def _explain(ref: str) -> int:
    loaded = load_all()
    workflow = next((w for w in loaded.workflows if f"{w.app_id}/{w.stem}" == ref), None)
    if workflow is None:
        return unknown_workflow(ref, loaded)
    return _print(explain_lines(workflow))


if __name__ == "__main__":
    sys.exit(main())
