"""`workflows import-ts SRC DEST`: an app of the original platform -> an app folder here.

SRC is the app's root (with `schedules.json` and `src/server/workflows/`), a folder of
TypeScript files, or one file; DEST is `<defs>/apps/<app_id>`. Every workflow export
becomes `DEST/workflows/<export name>.json`, and `schedules.json` is copied with each
`.ts` path rewritten to the JSON file of its export. Nothing is written unless everything
converts: a half-ported app would fail `workflows check` in ways that hide the cause.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from resources.secrets import redact
from translators.import_ts import ImportProblem, TsModule, TsWorkflow

WORKFLOWS_DIR = Path("src/server/workflows")
_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_SKIPPED = (".d.ts", ".test.ts", ".spec.ts")


def import_ts(src: Path, dest: Path) -> int:
    """Convert and write; print what was written, or every problem (redacted). Exit code."""
    files, problems = convert(src)
    if not _APP_ID.fullmatch(dest.resolve().name):
        problems.append(
            ImportProblem(str(dest), 0, 0, f"'{dest.resolve().name}' is not an app id",
                          "DEST to be apps/<app_id> with an app id like [A-Za-z0-9][A-Za-z0-9_-]*")
        )  # fmt: skip
    if problems:
        for problem in problems:
            print(redact(str(problem)), file=sys.stderr)
        print(f"\n{len(problems)} problem(s); nothing was written.", file=sys.stderr)
        return 1
    for relative, content in files.items():
        write_atomically(dest / relative, content)
        print(f"wrote {dest / relative}")
    defs = dest.parent.parent if dest.resolve().parent.name == "apps" else dest
    print(f"next: workflows check {defs}")
    return 0


def convert(src: Path) -> tuple[dict[str, str], list[ImportProblem]]:
    """The files to write (path inside DEST -> text) and every problem found."""
    if not src.exists():
        return {}, [ImportProblem(str(src), 0, 0, "does not exist", "an app folder or a .ts file")]
    root = src if src.is_dir() else src.parent
    workflows, problems = _read_workflows(root, _sources(src))
    if not workflows and not problems:
        problems.append(
            ImportProblem(str(src), 0, 0, "holds no JobDefinition export",
                          "`export const x: JobDefinition = {...}` in a .ts file")
        )  # fmt: skip
    files = {f"workflows/{w.name}.json": _json_text(w.value) for w in workflows}
    schedules = root / "schedules.json"
    if src.is_dir() and schedules.is_file():
        text, found = rewrite_schedules(schedules.read_bytes(), workflows)
        problems += found
        files["schedules.json"] = text
    return files, problems


def _sources(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    folder = src / WORKFLOWS_DIR if (src / WORKFLOWS_DIR).is_dir() else src
    return sorted(
        path
        for path in folder.rglob("*.ts")
        if not path.name.endswith(_SKIPPED) and "node_modules" not in path.parts
    )


def _read_workflows(
    root: Path, sources: Iterable[Path]
) -> tuple[list[TsWorkflow], list[ImportProblem]]:
    workflows: list[TsWorkflow] = []
    problems: list[ImportProblem] = []
    seen: dict[str, TsWorkflow] = {}
    for path in sources:
        label = path.relative_to(root).as_posix() if path != root else path.name
        found, errors = TsModule(path.read_bytes(), label).workflows()
        problems += errors
        for workflow in found:
            first = seen.setdefault(workflow.name, workflow)
            if first is not workflow:
                problems.append(_duplicate(workflow, first))
            else:
                workflows.append(workflow)
    return workflows, problems


def _duplicate(workflow: TsWorkflow, first: TsWorkflow) -> ImportProblem:
    return ImportProblem(
        workflow.file, workflow.line, 1,
        f"the workflow '{workflow.name}' is also exported by {first.file}:{first.line}",
        "one export per name (each becomes workflows/<name>.json)",
    )  # fmt: skip


def rewrite_schedules(raw: bytes, workflows: list[TsWorkflow]) -> tuple[str, list[ImportProblem]]:
    """`schedules.json` with every `.ts` workflow path pointing at its converted JSON file."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line, column = getattr(exc, "lineno", 0), getattr(exc, "colno", 0)
        return "", [ImportProblem("schedules.json", line, column, f"not JSON: {exc}", "JSON")]
    entries = data.get("schedules") if isinstance(data, dict) else None
    problems: list[ImportProblem] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        path = entry.get("workflow") if isinstance(entry, dict) else None
        if not isinstance(path, str) or path.endswith(".json"):
            continue  # left to `workflows check`, which says what a schedule needs
        name, problem, expected = _workflow_for(path, workflows)
        if name is None:
            problems.append(
                ImportProblem("schedules.json", 0, 0, problem, expected,
                              f"/schedules/{index}/workflow")
            )  # fmt: skip
        else:
            entry["workflow"] = f"./workflows/{name}.json"
    return _json_text(data), problems


def _workflow_for(path: str, workflows: list[TsWorkflow]) -> tuple[str | None, str, str]:
    """The export a schedule's `.ts` path means: the file's only workflow, or the one named
    like the file (the original platform's convention)."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    norm = norm if norm.endswith(".ts") else norm + ".ts"
    in_file = [w for w in workflows if w.file == norm]
    if not in_file:
        return None, f"'{path}' names no file with a JobDefinition export", _files_hint(workflows)
    if len(in_file) == 1:
        return in_file[0].name, "", ""
    stem = posixpath.basename(norm)[: -len(".ts")]
    if any(w.name == stem for w in in_file):
        return stem, "", ""
    names = ", ".join(f"'{w.name}'" for w in in_file)
    return (
        None,
        f"'{path}' exports several workflows ({names}) and none is named '{stem}'",
        f"the converted file of one of them, e.g. ./workflows/{in_file[0].name}.json",
    )


def _files_hint(workflows: list[TsWorkflow]) -> str:
    files = sorted({w.file for w in workflows})
    shown = ", ".join(f"'./{f}'" for f in files[:8]) or "none"
    return f"a .ts path of a file with a workflow export ({shown}) or ./workflows/<name>.json"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def write_atomically(path: Path, content: str) -> None:
    """Write `content` so that `path` is either untouched or complete (rename in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
