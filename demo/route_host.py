"""What the demo's route mixins (paging_routes, export_routes, auth_routes) use of the
request handler they are mixed into (`demo.server.DemoRequestHandler`): declared once, as
a protocol their methods take `self` as, instead of stub methods in every mixin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from demo.server import DemoState


class RouteHost(Protocol):
    headers: Any
    rfile: Any

    def _demo_state(self) -> DemoState: ...

    def _check_shop_token(self) -> None: ...

    def _check_crm_key(self) -> None: ...

    def _origin(self) -> str:
        """`http://host:port` as the client addressed the server."""
        ...
