"""Where the location's `io_manager` keeps step outputs (resources/step_outputs.py): the
instance folder by default, the table store's bucket when TABLE_STORE_ROOT is s3://.
The bucket itself is exercised in tests/test_table_store_s3.py and, across two Celery
workers, in tests/test_celery_scaleout.py."""

from __future__ import annotations

import builtins
import logging
from typing import Any

import dagster as dg
import pytest
from dagster_aws.s3 import S3PickleIOManager

from resources.step_outputs import step_output_io_manager
from tests.support.s3 import SECRET_KEY, S3Store


def test_one_machine_keeps_step_outputs_in_the_instance_folder() -> None:
    assert isinstance(step_output_io_manager(), dg.FilesystemIOManager)


def test_a_bucket_store_keeps_them_in_its_bucket_configured_by_variable_names(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = step_output_io_manager()
    assert isinstance(manager, S3PickleIOManager)
    assert (manager.s3_bucket, manager.s3_prefix) == (s3_store.bucket, "tables")
    s3 = manager.s3_resource
    assert s3.endpoint_url == dg.EnvVar("TABLE_STORE_ENDPOINT_URL")
    assert s3.region_name == dg.EnvVar("AWS_REGION")
    assert SECRET_KEY not in repr(manager), "the keys come from boto3's environment chain"
    monkeypatch.setenv("TABLE_STORE_ROOT", f"s3://{s3_store.bucket}")
    assert step_output_io_manager().s3_prefix == "dagster"


def test_without_dagster_aws_the_outputs_stay_local_with_a_warning(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_import = builtins.__import__

    def no_dagster_aws(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("dagster_aws"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dagster_aws)
    with caplog.at_level(logging.WARNING, logger="workflows"):
        manager = step_output_io_manager()
    assert isinstance(manager, dg.FilesystemIOManager)
    assert "dagster-aws is not installed" in caplog.text
    assert "`celery` extra" in caplog.text


def test_a_component_with_a_bucket_root_keeps_them_in_that_bucket() -> None:
    """The Dagster component's `table_store_root` moves the step outputs with the tables,
    whatever $TABLE_STORE_ROOT says."""
    from translators.component import WorkflowsComponent

    component = WorkflowsComponent(defs_dir="workflow_defs", table_store_root="s3://b/p")
    manager = component.resources()["io_manager"]
    assert isinstance(manager, S3PickleIOManager)
    assert (manager.s3_bucket, manager.s3_prefix) == ("b", "p")
    local = WorkflowsComponent(defs_dir="workflow_defs").resources()["io_manager"]
    assert isinstance(local, dg.FilesystemIOManager)
