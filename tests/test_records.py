"""Record shaping: dot paths, dataPath, fieldMapping, camelCase matching, generators."""

from __future__ import annotations

import datetime as dt
import pickle
import re
import uuid

import pytest

from resources.records import (
    MISSING,
    DataPathError,
    RecordShaper,
    generate_value,
    get_path,
    new_cuid,
    records_at,
    shape_record,
)

RESPONSE = {
    "data": {"orders": [{"id": 1}, {"id": 2}], "meta": {"next": None}, "count": 2},
    "items": [{"sku": "a"}, {"sku": "b"}],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.count", 2),
        ("data.meta.next", None),
        ("items.1.sku", "b"),
        ("items.-1.sku", "b"),
        ("", RESPONSE),
        ("data.nope", MISSING),
        ("items.5.sku", MISSING),
        ("data.count.deeper", MISSING),
        ("items.sku", MISSING),
    ],
)
def test_get_path(path: str, expected: object) -> None:
    assert get_path(RESPONSE, path) == expected or get_path(RESPONSE, path) is expected


def test_missing_is_a_falsy_singleton_that_survives_pickle() -> None:
    assert not MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert repr(MISSING) == "MISSING"


def test_records_at_array_object_null_and_root() -> None:
    assert records_at(RESPONSE, "data.orders") == [{"id": 1}, {"id": 2}]
    assert records_at({"data": {"id": 7}}, "data") == [{"id": 7}]
    assert records_at({"data": None}, "data") == []
    assert records_at([{"a": 1}], None) == [{"a": 1}]
    assert records_at([{"a": 1}], "") == [{"a": 1}]


def test_records_at_wraps_scalars_as_value_rows() -> None:
    assert records_at({"ids": [3, 4]}, "ids") == [{"value": 3}, {"value": 4}]


def test_data_path_error_names_path_and_present_keys() -> None:
    with pytest.raises(DataPathError) as info:
        records_at(RESPONSE, "data.order")
    message = str(info.value)
    assert "'data.order'" in message
    assert "no 'order' at data" in message
    for key in ("'orders'", "'meta'", "'count'"):
        assert key in message


def test_data_path_error_at_top_level_and_through_non_objects() -> None:
    with pytest.raises(DataPathError, match=r"no 'result' at the top level.*'data', 'items'"):
        records_at(RESPONSE, "result")
    with pytest.raises(DataPathError, match="count is a int"):
        records_at(RESPONSE, "data.count.x")
    with pytest.raises(DataPathError, match="expected an array or an object of records"):
        records_at(RESPONSE, "data.count")


def test_columns_match_by_name_and_camel_case() -> None:
    record = {"orderId": 1, "userID": "u", "Total_Amount": 9.5, "status": "paid", "x": 0}
    columns = ["order_id", "user_id", "total_amount", "status", "missing_col"]
    assert shape_record(record, columns) == {
        "order_id": 1,
        "user_id": "u",
        "total_amount": 9.5,
        "status": "paid",
        "missing_col": None,
    }


def test_exact_name_wins_then_plain_camel_case() -> None:
    assert shape_record({"orderId": 1, "order_id": 2}, ["order_id"]) == {"order_id": 2}
    assert shape_record({"ORDERID": 1, "orderId": 2}, ["order_id"]) == {"order_id": 2}
    assert shape_record({"order_id": 5}, ["orderId"]) == {"orderId": 5}


def test_shaper_handles_records_with_changing_keys() -> None:
    shaper = RecordShaper(["order_id"])
    assert shaper.shape({"OrderID": 1})["order_id"] == 1
    assert shaper.shape({"order-id": 2})["order_id"] == 2
    assert shaper.shape({"other": 3})["order_id"] is None


def test_shaper_plans_once_per_key_list_and_follows_each_record() -> None:
    """Records sharing their keys take the same fields; a record whose keys (or their
    order) differ is matched again, with mapped columns and item refs alongside."""
    shaper = RecordShaper(["order_id", "name", "org"], {"org": "{{item.org}}"})
    item = {"org": "o1"}
    rows = [
        shaper.shape({"orderId": 1, "name": "a"}, item),
        shaper.shape({"orderId": 2, "name": "b"}, item),
        shaper.shape({"name": "c", "order_id": 3, "orderId": 30}, item),
        shaper.shape({"name": "d"}, {"org": "o2"}),
        shaper.shape({"ORDER_ID": 5, "name": "e"}, item),
    ]
    assert rows == [
        {"order_id": 1, "name": "a", "org": "o1"},
        {"order_id": 2, "name": "b", "org": "o1"},
        {"order_id": 3, "name": "c", "org": "o1"},
        {"order_id": None, "name": "d", "org": "o2"},
        {"order_id": 5, "name": "e", "org": "o1"},
    ]


def test_field_mapping_paths_item_refs_and_fallback() -> None:
    mapping = {
        "customer_id": "customer.id",
        "first_line": "lines.0.sku",
        "dotted": "a.b",
        "org": "{{item.org_id}}",
        "org_spaced": "{{ item.org_id }}",
        "gone": "customer.nope",
    }
    record = {"customer": {"id": "c1"}, "lines": [{"sku": "s1"}], "a.b": "literal", "name": "n"}
    row = shape_record(record, [*mapping, "name"], mapping, item={"org_id": "o9"})
    assert row == {
        "customer_id": "c1",
        "first_line": "s1",
        "dotted": "literal",
        "org": "o9",
        "org_spaced": "o9",
        "gone": None,
        "name": "n",
    }


def test_item_ref_keeps_the_value_type_and_needs_an_item() -> None:
    shaper = RecordShaper(["n"], {"n": "{{item.count}}"})
    assert shaper.shape({}, {"count": 3}) == {"n": 3}
    assert shaper.shape({}, {"other": 3}) == {"n": None}
    with pytest.raises(ValueError, match="outside forEach"):
        shaper.shape({}, None)


def test_generators() -> None:
    mapping = {"id": {"generate": "cuid"}, "uid": {"generate": "uuid"}, "at": {"generate": "now"}}
    shaper = RecordShaper(["id", "uid", "at"], mapping)
    rows = [shaper.shape({}) for _ in range(500)]
    assert len({r["id"] for r in rows}) == 500
    assert all(re.fullmatch(r"[a-z][0-9a-z]{23}", r["id"]) for r in rows)
    assert uuid.UUID(rows[0]["uid"]).version == 4
    stamp = dt.datetime.fromisoformat(rows[0]["at"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(seconds=5)


def test_cuid_shape() -> None:
    ids = {new_cuid() for _ in range(2000)}
    assert len(ids) == 2000
    assert {len(i) for i in ids} == {24}
    assert {i[0] for i in ids} <= set("abcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"generate": "ulid"}, "expected {'generate': one of ['cuid', 'now', 'uuid']}"),
        ({"generate": "uuid", "x": 1}, "found {'generate': 'uuid', 'x': 1}"),
        ("", "expected a dot path"),
        (5, "found 5"),
        ("{{var.x}}", "neither a dot path nor exactly one"),
        ("prefix-{{item.x}}", "neither a dot path nor exactly one"),
    ],
)
def test_bad_mapping_values_are_rejected_when_the_shaper_is_built(
    spec: object, fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        RecordShaper(["col"], {"col": spec})  # type: ignore[dict-item]
    assert "fieldMapping 'col'" in str(info.value)
    assert fragment in str(info.value)


def test_generate_value() -> None:
    assert len(generate_value("cuid")) == 24
    assert uuid.UUID(generate_value("uuid"))
    assert generate_value("now").endswith("Z")
    with pytest.raises(ValueError, match="unknown generator 'ulid'"):
        generate_value("ulid")


def test_shape_record_reuses_the_shaper_for_the_same_mapping_objects() -> None:
    columns, mapping = ["a"], {"a": "x.y"}
    assert shape_record({"x": {"y": 1}}, columns, mapping) == {"a": 1}
    assert shape_record({"x": {"y": 2}}, columns, mapping) == {"a": 2}
    assert shape_record({"x": {"y": 2}, "z": 3}, columns, {"a": "z"}) == {"a": 3}
    assert shape_record({"a": 4}, ["a"], None) == {"a": 4}
