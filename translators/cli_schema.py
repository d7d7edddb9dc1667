"""`workflows schema [DIR]`: write the JSON Schemas of the definition files (docs/editor.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from resources.secrets import redact
from translators.json_schema import SCHEMA_FILES, all_schemas

DEFAULT_DIR = Path("schemas")


def write_schemas(out_dir: Path | None) -> int:
    """Write one `<kind>.schema.json` per kind of file into `out_dir`; 0, or 1 with the cause."""
    target = Path(out_dir) if out_dir is not None else DEFAULT_DIR
    schemas = all_schemas()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
            (target / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or target
        print(
            redact(
                f"workflows schema: cannot write the schemas to {where}: {reason}; "
                "expected a folder that can be created or written"
            ),
            file=sys.stderr,
        )
        return 1
    for kind in SCHEMA_FILES:
        print(f"{target / kind.name}  <- <definitions folder>/{kind.pattern}")
    return 0
