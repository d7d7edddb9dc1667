"""One TypeScript file of the original platform -> its `JobDefinition` exports (SPEC 11).

The file is parsed with tree-sitter's TypeScript grammar (a real parser: comments,
strings, template literals and `as const` are the grammar's business, not a regex's).
Exports that are workflows: one typed `JobDefinition` (annotation, `as` or
`satisfies`) or an object literal with `steps`, whether written `export const x`,
`export default` or `export { x as y }`. Their values are evaluated statically by
`translators.import_ts_values`; other exports and re-exports (`index.ts`) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import tree_sitter_typescript
from tree_sitter import Language, Node, Parser

from translators.import_ts_values import (
    LITERAL,
    ConversionError,
    Evaluator,
    named,
    short,
    text,
    unwrap,
)

_LANGUAGE = Language(tree_sitter_typescript.language_typescript())
_TYPE_NAME = re.compile(r"\bJobDefinition\b")
_CLAUSE_TYPES = ("as_expression", "satisfies_expression")


@dataclass(frozen=True)
class ImportProblem:
    """One thing that cannot be converted: `file:line:column: what (at #pointer); expected`."""

    file: str
    line: int
    column: int
    message: str
    expected: str | None = None
    pointer: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        elif self.pointer:
            where += f"#{self.pointer}"
        message = f"{where}: {self.message}"
        if self.line and self.pointer:
            message += f" (at #{self.pointer} of the workflow)"
        if self.expected:
            message += f"; expected {self.expected}"
        return message


@dataclass(frozen=True)
class TsWorkflow:
    """A converted export: `name` is the export's name (a default export: the file stem)."""

    name: str
    value: dict[str, Any]
    file: str
    line: int


@dataclass(frozen=True)
class _Binding:
    kind: str  # const, let, var, or a declaration type such as function_declaration
    node: Node  # where it is declared
    value: Node | None = None
    type: Node | None = None


@dataclass(frozen=True)
class _Export:
    name: str
    node: Node  # the export statement (its line is the workflow's)
    value: Node  # an expression, or the identifier a clause or default export names


class TsModule:
    """The top-level declarations of one file and the workflows it exports."""

    def __init__(self, source: bytes, file: str) -> None:
        self.file = file
        self._source = source
        self._root = Parser(_LANGUAGE).parse(source).root_node
        self._bindings: dict[str, _Binding] = {}
        self._imports: dict[str, str] = {}
        self._exports: list[_Export] = []
        self._values: dict[str, Any] = {}
        self._evaluating: list[str] = []
        self._evaluator = Evaluator(self._resolve)

    def workflows(self) -> tuple[list[TsWorkflow], list[ImportProblem]]:
        """Every workflow export, converted, and a problem per export that cannot be."""
        if self._root.has_error:
            return [], [self._syntax_problem()]
        for statement in named(self._root):
            self._collect(statement)
        found: list[TsWorkflow] = []
        problems: list[ImportProblem] = []
        for export in self._exports:
            if not self._is_workflow(export.value, depth=0):
                continue
            try:
                found.append(self._convert(export))
            except ConversionError as error:
                problems.append(
                    self.problem(error.node, error.message, error.expected, error.pointer)
                )
        return found, problems

    def problem(
        self, node: Node, message: str, expected: str | None = None, pointer: str = ""
    ) -> ImportProblem:
        row, byte_column = node.start_point
        line = self._source.split(b"\n")[row] if row < self._source.count(b"\n") + 1 else b""
        column = len(line[:byte_column].decode("utf-8", "replace")) + 1
        return ImportProblem(self.file, row + 1, column, message, expected, pointer)

    def _convert(self, export: _Export) -> TsWorkflow:
        value = self._evaluator.value(export.value, "")
        if not isinstance(value, dict):
            raise ConversionError(
                export.value, f"the export '{export.name}' is not an object",
                "a JobDefinition object literal",
            )  # fmt: skip
        return TsWorkflow(export.name, value, self.file, export.node.start_point[0] + 1)

    def _collect(self, statement: Node) -> None:
        kind = statement.type
        if kind == "import_statement":
            self._collect_import(statement)
        elif kind in ("lexical_declaration", "variable_declaration"):
            self._declare(statement)
        elif kind == "export_statement":
            self._collect_export(statement)
        elif (name := statement.child_by_field_name("name")) is not None:
            # function, class, enum, interface, type: a name that is no literal value
            self._bindings[text(name)] = _Binding(kind, statement)

    def _collect_import(self, statement: Node) -> None:
        source = statement.child_by_field_name("source")
        module = text(source).strip("'\"") if source is not None else "?"
        for clause in named(statement):
            if clause.type != "import_clause":
                continue
            for part in named(clause):
                if part.type == "identifier":
                    self._imports[text(part)] = module
                elif part.type == "namespace_import":
                    self._imports[text(named(part)[-1])] = module
                elif part.type == "named_imports":
                    for spec in named(part):
                        local = spec.child_by_field_name("alias") or spec.child_by_field_name(
                            "name"
                        )
                        if local is not None:
                            self._imports[text(local)] = module

    def _declare(self, statement: Node) -> list[str]:
        keyword = statement.child(0)
        kind = text(keyword) if keyword is not None else "var"
        names = []
        for declarator in named(statement):
            name = declarator.child_by_field_name("name")
            if declarator.type != "variable_declarator" or name is None:
                continue
            if name.type != "identifier":
                continue  # a destructuring pattern: its names stay unknown, so refused if used
            self._bindings[text(name)] = _Binding(
                kind,
                declarator,
                declarator.child_by_field_name("value"),
                declarator.child_by_field_name("type"),
            )
            names.append(text(name))
        return names

    def _collect_export(self, statement: Node) -> None:
        if statement.child_by_field_name("source") is not None:
            return  # a re-export (`export { x } from './x'`): that file is read on its own
        declaration = statement.child_by_field_name("declaration")
        value = statement.child_by_field_name("value")
        if declaration is not None and declaration.type in (
            "lexical_declaration",
            "variable_declaration",
        ):
            for name in self._declare(declaration):
                binding = self._bindings[name]
                self._exports.append(_Export(name, statement, _name_node(binding)))
        elif declaration is not None:
            self._collect(declaration)
        elif value is not None:
            self._exports.append(_Export(PurePosixPath(self.file).stem, statement, value))
        for clause in named(statement):
            if clause.type == "export_clause":
                for spec in named(clause):
                    local = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias") or local
                    if local is not None and alias is not None:
                        self._exports.append(_Export(text(alias), statement, local))

    def _is_workflow(self, node: Node, depth: int) -> bool:
        """Typed JobDefinition, or an object literal with `steps`; follows const names."""
        current = node
        while current.type in (*_CLAUSE_TYPES, "non_null_expression", "parenthesized_expression"):
            parts = named(current)
            if current.type in _CLAUSE_TYPES and _TYPE_NAME.search(text(parts[-1])):
                return True
            current = parts[0]
        current = unwrap(current)
        if current.type == "object":
            return any(
                pair.type == "pair" and _key_text(pair) == "steps" for pair in named(current)
            )
        binding = self._bindings.get(text(current)) if current.type == "identifier" else None
        if binding is None or depth > 20:
            return False
        if binding.type is not None and _TYPE_NAME.search(text(binding.type)):
            return True
        return binding.value is not None and self._is_workflow(binding.value, depth + 1)

    def _resolve(self, name: str, node: Node, pointer: str) -> Any:
        binding = self._bindings.get(name)
        if binding is None:
            raise self._unknown(name, node, pointer)
        if binding.kind != "const" or binding.value is None:
            what = binding.kind.replace("_declaration", "").replace("_", " ")
            raise ConversionError(
                node, f"`{name}` is declared with {what} (line {binding.node.start_point[0] + 1}), "
                "not as a const with a value", LITERAL, pointer,
            )  # fmt: skip
        if name in self._values:
            return self._values[name]
        if name in self._evaluating:
            chain = " -> ".join([*self._evaluating[self._evaluating.index(name) :], name])
            raise ConversionError(node, f"`{name}` refers to itself ({chain})", LITERAL, pointer)
        self._evaluating.append(name)
        try:
            value = self._evaluator.value(binding.value, pointer)
        finally:
            self._evaluating.pop()
        self._values[name] = value
        return value

    def _unknown(self, name: str, node: Node, pointer: str) -> ConversionError:
        if name in self._imports:
            return ConversionError(
                node, f"`{name}` is imported from '{self._imports[name]}'; import-ts reads each "
                "file on its own and does not follow imports",
                "the value written out in this file, or a const declared in it", pointer,
            )  # fmt: skip
        if name == "process":
            return ConversionError(
                node, "`process.env` is read when the code runs; here secrets come from the "
                "environment through the service catalog (tokenEnv, valueEnv, ...)",
                "a literal, or the secret moved into the service's auth", pointer,
            )  # fmt: skip
        return ConversionError(node, f"`{name}` is not declared in this file", LITERAL, pointer)

    def _syntax_problem(self) -> ImportProblem:
        node = _first_error(self._root)
        if node.is_missing:
            return self.problem(node, f"syntax error: missing `{node.type}`", "valid TypeScript")
        return self.problem(node, f"syntax error near `{short(node, 30)}`", "valid TypeScript")


def _name_node(binding: _Binding) -> Node:
    name = binding.node.child_by_field_name("name")
    assert name is not None
    return name


def _key_text(pair: Node) -> str:
    key = pair.child_by_field_name("key")
    return text(key).strip("'\"") if key is not None else ""


def _first_error(root: Node) -> Node:
    """The first ERROR or missing node in source order (the parser recovered around it)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return node
        stack.extend(reversed([child for child in node.children if child.has_error]))
    return root
