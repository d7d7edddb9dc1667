"""Templates: `{{var.X}}` / `{{item.X}}` found, rendered, and turned into SQL parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from translators.templates import (
    TemplateError,
    TemplateRef,
    as_text,
    find_malformed,
    find_refs,
    has_template,
    param_name,
    render,
    single_ref,
    sql_with_params,
)


def test_find_refs_walks_nested_values_with_pointers() -> None:
    value = {"a": ["{{var.x}} and {{ item.y }}", {"b/c": "{{var.z}}"}], "n": 1, "t": "plain"}
    assert find_refs(value) == [
        TemplateRef("var", "x", "/a/0"),
        TemplateRef("item", "y", "/a/0"),
        TemplateRef("var", "z", "/a/1/b~1c"),
    ]
    assert find_refs("{{var.x}}") == [TemplateRef("var", "x", "")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{foo.x}}", "unknown scope 'foo'"),
        ("{{var.}}", "no name after 'var.'"),
        ("{{ var.x", "never closed"),
        ("{{}}", "empty"),
        ("{{x}}", "names no scope"),
        ("{{var.a.b}}", "not a plain name"),
        ("{{var.x | upper}}", "not a plain name"),
    ],
)
def test_malformed_templates(text: str, reason: str) -> None:
    [bad] = find_malformed({"k": [text]})
    assert bad.pointer == "/k/0"
    assert reason in bad.reason
    assert find_refs(text) == []


def test_spaces_inside_braces_are_accepted() -> None:
    assert find_malformed("{{ var.x }}") == []
    assert single_ref("{{ var.x }}") == TemplateRef("var", "x")
    assert single_ref(" {{var.x}}") is None
    assert single_ref("{{var.x}}{{var.y}}") is None
    assert has_template({"a": ["{{oops"]}) and not has_template({"a": 1})


def test_a_whole_template_keeps_the_value_type() -> None:
    variables = {"n": 5, "flag": False, "obj": {"a": [1]}, "none": None}
    assert render("{{var.n}}", variables) == 5
    assert render("{{var.flag}}", variables) is False
    assert render("{{var.obj}}", variables) == {"a": [1]}
    assert render("{{ var.none }}", variables) is None


def test_a_template_inside_text_renders_as_text() -> None:
    variables = {"n": 5, "t": True, "obj": {"a": [1, "x"]}, "none": None}
    text = "n={{var.n}} t={{var.t}} obj={{var.obj}} none=[{{var.none}}]"
    assert render(text, variables) == 'n=5 t=true obj={"a":[1,"x"]} none=[]'


def test_render_is_recursive_and_reads_items() -> None:
    value: Any = {"q": ["{{item.id}}", {"deep": "id-{{item.id}}"}], "k": 3}
    assert render(value, {}, {"id": 7}) == {"q": [7, {"deep": "id-7"}], "k": 3}


@pytest.mark.parametrize(
    ("text", "variables", "item", "message"),
    [
        ("{{var.nope}}", {}, None, "unknown variable 'nope'"),
        ("{{item.id}}", {}, None, "only available inside forEach"),
        ("{{item.idd}}", {}, {"id": 1}, "no column 'idd'"),
        ("{{foo.x}}", {}, None, "malformed"),
    ],
)
def test_render_errors(text: str, variables: dict, item: dict | None, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(text, variables, item)


def test_as_text() -> None:
    assert as_text(None) == "" and as_text(True) == "true" and as_text(1.5) == "1.5"
    assert as_text(dt.date(2026, 1, 2)) == "2026-01-02"
    assert as_text([1, {"a": None}]) == '[1,{"a":null}]'


def test_sql_quoted_template_becomes_a_parameter() -> None:
    sql, names = sql_with_params("SELECT * FROM t WHERE d >= '{{var.since}}' AND n = {{ var.n }}")
    assert sql == "SELECT * FROM t WHERE d >= $since AND n = $n"
    assert names == ["since", "n"]


def test_sql_repeated_variables_are_bound_once() -> None:
    sql, names = sql_with_params("SELECT {{var.a}} + {{var.a}} AS s, '{{var.b}}' AS b")
    assert (sql, names) == ("SELECT $a + $a AS s, $b AS b", ["a", "b"])


def test_sql_template_inside_a_longer_literal_is_concatenated_not_spliced() -> None:
    sql, names = sql_with_params("SELECT 'it''s {{var.q}}!' AS a")
    assert names == ["q"]
    assert "{{" not in sql and "$q" in sql
    con = duckdb.connect()
    assert con.execute(sql, {"q": "x'; DROP TABLE t; --"}).fetchone() == (
        "it's x'; DROP TABLE t; --!",
    )
    assert con.execute(sql, {"q": None}).fetchone() == ("it's !",)


def test_sql_values_are_never_spliced() -> None:
    sql, names = sql_with_params("SELECT '{{var.q}}' AS q")
    assert names == ["q"]
    con = duckdb.connect()
    assert con.execute(sql, {"q": "'); DROP TABLE x; --"}).fetchone() == ("'); DROP TABLE x; --",)


def test_sql_comments_and_identifiers() -> None:
    sql, names = sql_with_params('SELECT 1 -- {{var.c}}\n/* {{var.d}} */ AS "x"')
    assert names == [] and "{{var.c}}" in sql and "{{var.d}}" in sql
    with pytest.raises(TemplateError, match="double quotes"):
        sql_with_params('SELECT "{{var.col}}" FROM t')


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT {{item.id}}", "cannot be used in SQL"),
        ("SELECT {{var.}}", "malformed"),
        ("SELECT '{{var.x'", "never closed"),
        ("SELECT {{var.orgId}}, {{var.orgid}}", "share parameter"),
    ],
)
def test_sql_template_errors(sql: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        sql_with_params(sql)


def test_param_name_is_sanitised() -> None:
    assert param_name("since") == "since"
    assert param_name("org-id") == "org_id"
    sql, names = sql_with_params("SELECT {{var.org-id}} AS o")
    assert (sql, names) == ("SELECT $org_id AS o", ["org-id"])
