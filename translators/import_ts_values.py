"""Static evaluation of TypeScript object literals (SPEC 11, `workflows import-ts`).

The original platform's `JobDefinition`s are object literals: this turns the syntax tree
of one (tree-sitter's TypeScript grammar) into the JSON value it denotes, without running
anything. Literals, `as const` / `satisfies` / `!`, same-file `const`s (by name, by
member, spread into objects and arrays, substituted into template literals) and string
concatenation evaluate; whatever would need the code to run (a call, an import, `let`,
arithmetic, a function) raises `ConversionError` at the node that caused it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tree_sitter import Node

from resources.secrets import redact
from translators.errors import join_pointer

LITERAL = (
    "a literal (string, number, true, false, null, object, array) or a const declared in this file"
)
# Expressions that only wrap a value in a type: `x as const`, `x satisfies T`, `x!`, `(x)`.
_WRAPPERS = {"as_expression", "satisfies_expression", "non_null_expression"}
_WRAPPERS |= {"parenthesized_expression"}
_WORKFLOW_TEMPLATE = re.compile(r"(var|item)\.[A-Za-z0-9_]+")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0"}
_COMPUTED = {
    "call_expression": "a function call",
    "new_expression": "a constructor call (new)",
    "arrow_function": "a function",
    "function_expression": "a function",
    "await_expression": "an await",
    "ternary_expression": "a conditional expression",
    "assignment_expression": "an assignment",
    "update_expression": "an update (++/--)",
    "regex": "a regular expression",
    "class": "a class",
}


@dataclass
class ConversionError(Exception):
    """What cannot be converted, at which node, under which JSON pointer of the workflow."""

    node: Node
    message: str
    expected: str | None = None
    pointer: str = ""


def named(node: Node) -> list[Node]:
    """The named children of `node`, comments left out."""
    return [child for child in node.named_children if child.type != "comment"]


def text(node: Node) -> str:
    return (node.text or b"").decode("utf-8")


def unwrap(node: Node) -> Node:
    """The expression inside `as const`, `satisfies T`, `<T>x`, `x!` and parentheses."""
    while True:
        if node.type in _WRAPPERS:
            node = named(node)[0]
        elif node.type == "type_assertion":
            node = named(node)[-1]
        else:
            return node


def short(node: Node, limit: int = 40) -> str:
    """The source of a node on one line, cut to `limit` characters, for messages; redacted
    before it is cut, so a cut cannot hide a secret's shape from `redact`."""
    source = redact(" ".join(text(node).split()))
    return source if len(source) <= limit else source[: limit - 3] + "..."


class Evaluator:
    """Evaluates expressions of one file; `resolve(name, node, pointer)` gives a const's value."""

    def __init__(self, resolve: Callable[[str, Node, str], Any]) -> None:
        self._resolve = resolve

    def value(self, node: Node, pointer: str) -> Any:
        node = unwrap(node)
        kind = node.type
        if kind == "object":
            return self._object(node, pointer)
        if kind == "array":
            return self._array(node, pointer)
        if kind == "string":
            return string_value(node)
        if kind == "template_string":
            return self._template(node, pointer)
        if kind == "number":
            return number_value(node, pointer)
        if kind in ("true", "false"):
            return kind == "true"
        if kind == "null":
            return None
        if kind == "identifier":
            return self._resolve(text(node), node, pointer)
        if kind in ("member_expression", "subscript_expression"):
            return self._member(node, pointer)
        if kind == "unary_expression":
            return self._unary(node, pointer)
        if kind == "binary_expression":
            return self._concat(node, pointer)
        raise _not_static(node, pointer)

    def _object(self, node: Node, pointer: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for child in named(node):
            if child.type == "pair":
                key = self._key(child.child_by_field_name("key"), pointer)
                value_node = child.child_by_field_name("value")
                assert value_node is not None
                result[key] = self.value(value_node, join_pointer(pointer, key))
            elif child.type == "shorthand_property_identifier":
                name = text(child)
                result[name] = self._resolve(name, child, join_pointer(pointer, name))
            elif child.type == "spread_element":
                spread = self.value(named(child)[0], pointer)
                if not isinstance(spread, dict):
                    raise ConversionError(
                        child, f"`{short(child)}` spreads a non-object into an object",
                        "an object const of this file", pointer,
                    )  # fmt: skip
                result.update(spread)
            else:
                raise ConversionError(child, f"`{short(child)}` is a method", LITERAL, pointer)
        return result

    def _key(self, node: Node | None, pointer: str) -> str:
        assert node is not None
        if node.type == "property_identifier":
            return text(node)
        if node.type == "string":
            return string_value(node)
        if node.type == "number":
            return js_number_text(number_value(node, pointer))
        raise ConversionError(
            node, f"the computed key `{short(node)}` cannot be evaluated statically",
            "a plain or quoted key", pointer,
        )  # fmt: skip

    def _array(self, node: Node, pointer: str) -> list[Any]:
        result: list[Any] = []
        for child in named(node):
            if child.type == "spread_element":
                spread = self.value(named(child)[0], join_pointer(pointer, len(result)))
                if not isinstance(spread, list):
                    raise ConversionError(
                        child, f"`{short(child)}` spreads a non-array into an array",
                        "an array const of this file", pointer,
                    )  # fmt: skip
                result.extend(spread)
            else:
                result.append(self.value(child, join_pointer(pointer, len(result))))
        return result

    def _template(self, node: Node, pointer: str) -> str:
        parts: list[str] = []
        for child in named(node):
            if child.type == "string_fragment":
                parts.append(text(child).replace("\r\n", "\n").replace("\r", "\n"))
            elif child.type == "escape_sequence":
                parts.append(escape_value(text(child)))
            elif child.type == "template_substitution":
                parts.append(self._substitution(child, pointer))
        return join_utf16(parts)

    def _substitution(self, node: Node, pointer: str) -> str:
        inner = named(node)[0]
        if unwrap(inner).type not in ("identifier", "member_expression", "subscript_expression"):
            raise _bad_substitution(node, pointer)
        if _WORKFLOW_TEMPLATE.fullmatch(text(inner).strip()):
            raise _bad_substitution(node, pointer)  # with the {{...}} hint, before `item` fails
        value = self.value(inner, pointer)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _bad_substitution(node, pointer)
        return value if isinstance(value, str) else js_number_text(value)

    def _member(self, node: Node, pointer: str) -> Any:
        target = node.child_by_field_name("object")
        assert target is not None
        container = self.value(target, pointer)
        if node.type == "member_expression":
            prop = node.child_by_field_name("property")
            key: Any = text(prop) if prop is not None else ""
        else:
            index = node.child_by_field_name("index")
            assert index is not None
            key = self.value(index, pointer)
        if isinstance(container, dict) and isinstance(key, str) and key in container:
            return container[key]
        if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
            return container[key]
        raise ConversionError(
            node, f"`{short(node)}` names nothing in `{short(target)}`",
            "a key or index that the const has", pointer,
        )  # fmt: skip

    def _unary(self, node: Node, pointer: str) -> Any:
        operator = node.child_by_field_name("operator")
        argument = node.child_by_field_name("argument")
        if operator is not None and argument is not None and text(operator) in "-+":
            value = self.value(argument, pointer)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return -value if text(operator) == "-" else value
        raise _not_static(node, pointer)

    def _concat(self, node: Node, pointer: str) -> str:
        """`'a' + 'b'`: SQL split over lines the old way; arithmetic stays refused."""
        operator = node.child_by_field_name("operator")
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if operator is not None and text(operator) == "+" and left and right:
            values = self.value(left, pointer), self.value(right, pointer)
            if all(isinstance(v, str) for v in values):
                return values[0] + values[1]
        raise ConversionError(
            node, f"`{short(node)}` is a computed value", f"{LITERAL} (only strings may be "
            "joined with +)", pointer,
        )  # fmt: skip


def _not_static(node: Node, pointer: str) -> ConversionError:
    if node.type == "undefined":
        return ConversionError(node, "`undefined` has no JSON value", "the key left out", pointer)
    what = _COMPUTED.get(node.type, f"a {node.type.replace('_', ' ')}")
    return ConversionError(
        node, f"`{short(node)}` is {what}, which cannot be evaluated without running the code",
        LITERAL, pointer,
    )  # fmt: skip


def _bad_substitution(node: Node, pointer: str) -> ConversionError:
    inner = text(named(node)[0]).strip()
    hint = ""
    if _WORKFLOW_TEMPLATE.fullmatch(inner):
        hint = f" (a workflow template is written {{{{{inner}}}}}, without $)"
    return ConversionError(
        node, f"the template literal substitutes `{short(node)}`, which is not a string or "
        f"number const of this file{hint}", "text, {{var.X}} / {{item.X}} workflow templates, "
        "or ${NAME} of a string const declared in this file", pointer,
    )  # fmt: skip


def string_value(node: Node) -> str:
    parts = []
    for child in named(node):
        if child.type == "escape_sequence":
            parts.append(escape_value(text(child)))
        else:
            parts.append(text(child))
    return join_utf16(parts)


def escape_value(escape: str) -> str:
    """The character(s) a JavaScript escape sequence (`\\n`, `\\u{1F600}`, `\\x41`) stands for."""
    body = escape[1:]
    if body[:1] in _SIMPLE_ESCAPES and len(body) == 1:
        return _SIMPLE_ESCAPES[body]
    if body.startswith("u{"):
        return chr(int(body[2:-1], 16))
    if body[:1] in ("u", "x"):
        return chr(int(body[1:], 16))
    if body in ("\n", "\r\n", "\r", "\u2028", "\u2029"):
        return ""  # a line continuation
    return body


def join_utf16(parts: list[str]) -> str:
    """Join parts, pairing surrogate halves (`\\uD83D\\uDE00`) as JavaScript strings do."""
    joined = "".join(parts)
    try:
        return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return joined


def number_value(node: Node, pointer: str) -> int | float:
    source = text(node).replace("_", "")
    lowered = source.lower()
    if lowered.endswith("n"):
        raise ConversionError(node, f"`{source}` is a BigInt", "a plain number", pointer)
    if lowered[:2] in ("0x", "0o", "0b"):
        return int(lowered, 0)
    value = float(lowered)
    # JavaScript has one number type: 5.0 is 5, as JSON.stringify writes it.
    return (
        int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 1e21 else value
    )


def js_number_text(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e21 else repr(value)
