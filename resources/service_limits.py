"""Limits of a service call that the catalog model and the resource name as defaults.

Apart from `resources.service_transport` so that loading definitions (the catalog model,
the resource class) does not import aiohttp and httpx, which only a call needs (issue 8).
"""

from __future__ import annotations

DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
