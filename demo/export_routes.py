"""The demo shop's asynchronous order export, for polling waits (`wait.poll`).

Mixed into `demo.server.DemoRequestHandler`.

- `GET /shop/exports/{exportId}`: `{"export": {"id", "status", "polls", "rowCount"}}`;
  the status is "pending" for the first `EXPORT_PENDING_POLLS` calls of an export id
  (counted per server), then "ready" with the number of orders in `rowCount` (null
  before). Bearer auth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demo.route_host import RouteHost

EXPORT_PENDING_POLLS = 2


class ExportRoutes:
    """The export route; the handler class provides the state and the token check."""

    def _get_export(self: RouteHost, path: str, _query: dict[str, list[str]]) -> tuple[int, Any]:
        self._check_shop_token()
        export_id = path.removeprefix("/shop/exports/")
        state = self._demo_state()
        with state.lock:
            polls = state.export_polls.get(export_id, 0) + 1
            state.export_polls[export_id] = polls
        ready = polls > EXPORT_PENDING_POLLS
        export = {
            "id": export_id,
            "status": "ready" if ready else "pending",
            "polls": polls,
            "rowCount": len(state.orders) if ready else None,
        }
        return 200, {"export": export}
