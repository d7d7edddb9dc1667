"""Small definition folders written under tmp_path, for the loader's tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHOP_SERVICE = {
    "name": "shop",
    "baseUrl": "http://127.0.0.1:9/shop",
    "auth": {"type": "bearer", "tokenEnv": "SHOP_TOKEN"},
    "operations": {
        "listOrders": {"method": "GET", "path": "/orders"},
        "getOrder": {"method": "GET", "path": "/orders/{orderId}"},
        "postMessage": {"method": "POST", "path": "/messages", "mutation": True},
    },
}
CRM_SERVICE = {
    "name": "crm",
    "baseUrl": "http://127.0.0.1:9/crm",
    "userTokensEnv": "CRM_USER_TOKENS",
    "operations": {"listContacts": {"path": "/contacts"}},
}

# A serviceCall producing `orders` (id, total, customer).
FETCH_ORDERS: dict[str, Any] = {
    "id": "fetch",
    "service": "shop",
    "operation": "listOrders",
    "outputTable": "orders",
    "outputSchema": {"id": "VARCHAR", "total": "BIGINT", "customer": "VARCHAR"},
}

# A valid workflow with param variables, for schedules to point at.
PARAMS_WORKFLOW: dict[str, Any] = {
    "variables": {
        "orgId": {"type": "param"},
        "limit": {"type": "param", "default": 10},
        "since": {"type": "dateOffset", "days": -1},
    },
    "steps": [{**FETCH_ORDERS, "params": {"org": "{{var.orgId}}", "limit": "{{var.limit}}"}}],
}

BASE_FILES: dict[str, Any] = {
    "services/shop.json": SHOP_SERVICE,
    "services/crm.json": CRM_SERVICE,
    "apps/shop/workflows/base.json": PARAMS_WORKFLOW,
}

WORKFLOW_FILE = "apps/shop/workflows/w.json"
SCHEDULES_FILE = "apps/shop/schedules.json"


def write_defs(root: Path, files: Mapping[str, Any], base: bool = True) -> Path:
    """Write `files` (relative path -> JSON value, or str for raw text) under root/defs."""
    defs = root / "defs"
    for rel, content in {**(BASE_FILES if base else {}), **files}.items():
        path = defs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        path.write_text(text, encoding="utf-8")
    return defs


def workflow(*steps: dict[str, Any], variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"variables": variables or {}, "steps": list(steps)}


def sql_step(sql: str, table: str, **extra: Any) -> dict[str, Any]:
    return {"sql": sql, "outputTable": table, **extra}


def schedule(name: str = "nightly", **fields: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "cron": "0 3 * * *",
        "workflow": "./workflows/base.json",
        "params": {"orgId": "org_1"},
    }
    return {**entry, **fields}
