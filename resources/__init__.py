"""Dagster resources of the translated jobs (HTTP services, the table store, databases)."""

import os

# Arrow's default pool (mimalloc) keeps what a step frees: streaming 1M records through the
# table store grew the RSS by ~60 MB, against ~20 MB with the C library's malloc, which is
# no slower here (bench/, issue 8 P5). Arrow reads the variable once, when it is imported,
# so it is set before any module of this package imports pyarrow; an operator's value wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
