"""Limits of a service call that the catalog model and the resource name as defaults.

Apart from `resources.service_transport` so that loading definitions (the catalog model,
the resource class) does not import aiohttp and httpx, which only a call needs (issue 8).
"""

from __future__ import annotations

DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20

# Steps calling a service share the Dagster concurrency pool `service/<name>`: the
# instance caps how many run at once across all runs (`concurrency: pools:` in
# dagster.yaml, or `dagster instance concurrency set service/<name> N`; docs/scaling.md).
SERVICE_POOL_PREFIX = "service/"


def service_pool(service_name: str) -> str:
    """The concurrency pool of the steps that call `service_name` (no spaces: a pool is
    one word to Dagster)."""
    # Not dagster_name: a pool name allows `/`, `-` and `.`, and operators type it as the
    # docs give it (`service/<name>`); mapping `a-b` to `a_b` would rename their pools
    # and merge two services' limits into one.
    return SERVICE_POOL_PREFIX + "".join("_" if c.isspace() else c for c in service_name)
