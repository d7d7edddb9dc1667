"""Where Dagster keeps step outputs: next to the table store (SPEC 5.6, docs/scaling.md).

A step's output is small (a table handle, the resolved variables) but the next step, or
a re-execution from failure, may run in another process on another machine: it must
find it. On one machine the instance's storage folder does (`FilesystemIOManager`,
`$DAGSTER_HOME/storage/<run_id>/<step>/result`). With `TABLE_STORE_ROOT=s3://bucket/prefix`
the outputs go to the same bucket, under `<prefix>/storage/<run_id>/<step>/result`,
through Dagster's own `S3PickleIOManager` (dagster-aws, in the `celery` extra).

It is configured from the variables of the table store (resources/object_store.py):
region `AWS_REGION` (boto3 reads `AWS_DEFAULT_REGION` itself), endpoint
`TABLE_STORE_ENDPOINT_URL`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
Only variable names go into the resource config (Dagster resolves them in each step
process); the keys are not in it at all: boto3 takes `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` from the environment, or its usual chain.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dagster as dg

from resources.object_store import ENDPOINT_ENV, S3_SCHEME

log = logging.getLogger("workflows")

_ENDPOINT_VARS = (ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# Where the outputs go when the root is the bucket itself (`s3://bucket`).
_DEFAULT_PREFIX = "dagster"


def step_output_io_manager(table_store_root: str | None = None) -> Any:
    """The location's `io_manager`: in the table store's bucket when it is one (the root
    given, e.g. by the Dagster component, else `$TABLE_STORE_ROOT`)."""
    root = table_store_root or os.environ.get("TABLE_STORE_ROOT") or ""
    if not root.startswith(S3_SCHEME):
        return dg.FilesystemIOManager()
    try:
        from dagster_aws.s3 import S3PickleIOManager, S3Resource
    except ImportError:
        # A one-machine deployment with its tables in a bucket still works: the outputs
        # stay in this machine's instance folder. Steps on several machines need them
        # shared, and the `celery` extra (which such a deployment installs) brings it.
        log.warning(
            "TABLE_STORE_ROOT is %s but dagster-aws is not installed: step outputs stay in "
            "$DAGSTER_HOME/storage of each machine; install the `celery` extra to keep "
            "them in the bucket",
            root,
        )
        return dg.FilesystemIOManager()
    bucket, _, prefix = root[len(S3_SCHEME) :].strip("/").partition("/")
    s3 = S3Resource(region_name=_env_var("AWS_REGION"), endpoint_url=_env_var(*_ENDPOINT_VARS))
    return S3PickleIOManager(
        s3_resource=s3, s3_bucket=bucket, s3_prefix=prefix.strip("/") or _DEFAULT_PREFIX
    )


def _env_var(*names: str) -> Any:
    """The first of `names` that is set, as a reference Dagster resolves at run time."""
    name = next((n for n in names if os.environ.get(n)), None)
    return dg.EnvVar(name) if name else None
