"""Where the table store keeps its files: a local folder or an S3-compatible bucket.

`TABLE_STORE_ROOT=s3://bucket/prefix` puts step tables and checkpoints in a bucket through
pyarrow's S3 filesystem (no DuckDB extension, no extra package). Its settings come from
the environment, read when a step first needs the store (never at code location load):

- `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (both or neither; `AWS_SESSION_TOKEN`
  optional). Without them the AWS SDK's own chain applies (profile, instance role).
- `AWS_REGION`, else `AWS_DEFAULT_REGION`.
- `TABLE_STORE_ENDPOINT_URL`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: the URL
  of an S3-compatible server (MinIO, Ceph, moto), `http://host:port` or `https://...`.
  Addressing is path-style (`host/bucket/key`), which such servers accept.

The secret key and session token are registered with `resources.secrets` as soon as they
are read, so no message built afterwards can show them.

A `Place` names one file or folder on either kind of store; the code above it (writer,
checkpoints, queries) asks it whether it is local only where the two must differ.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from resources.secrets import redact, register_secret

S3_SCHEME = "s3://"
ENDPOINT_ENV = "TABLE_STORE_ENDPOINT_URL"
_ENDPOINT_VARS = (ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class ObjectStoreError(RuntimeError):
    """The table store's object storage is misconfigured or answered with an error."""


@dataclass(frozen=True)
class Place:
    """A file or folder of the table store: `path` as its filesystem names it.

    Local: an absolute path. S3: `bucket/key`, shown to users as `s3://bucket/key`.
    """

    filesystem: pafs.FileSystem
    path: str
    remote: bool = False

    @classmethod
    def local(cls, path: Path | str) -> Place:
        return cls(pafs.LocalFileSystem(), str(path))

    @property
    def uri(self) -> str:
        """What a `TableHandle` carries and messages show."""
        return S3_SCHEME + self.path if self.remote else self.path

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def child(self, *names: str) -> Place:
        return Place(self.filesystem, "/".join([self.path.rstrip("/"), *names]), self.remote)

    def sibling(self, name: str) -> Place:
        parent = self.path.rstrip("/").rsplit("/", 1)[0]
        return Place(self.filesystem, f"{parent}/{name}", self.remote)

    def ensure_folder(self) -> None:
        """Create the folder (local only: a bucket has no folders to create)."""
        if not self.remote:
            Path(self.path).mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        info = self.filesystem.get_file_info(self.path)
        return info.type != pafs.FileType.NotFound

    def files(self, prefix: str, suffix: str) -> list[Place]:
        """The files directly in this folder named `prefix...suffix`, sorted by name."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        names = sorted(
            info.base_name
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.base_name.startswith(prefix)
            and info.base_name.endswith(suffix)
        )
        return [self.child(name) for name in names]

    def read_bytes(self) -> bytes:
        with self.filesystem.open_input_stream(self.path) as stream:
            return bytes(stream.read())

    def write_bytes(self, data: bytes) -> None:
        """Replace the file at once: readers see the old or the new content, nothing between.

        An object store's PUT is atomic by itself; a local file goes through a rename.
        """
        if self.remote:
            with self.filesystem.open_output_stream(self.path) as stream:
                stream.write(data)
            return
        temp = self.sibling(f".{self.name}.{uuid.uuid4().hex}.tmp")
        Path(temp.path).write_bytes(data)
        os.replace(temp.path, self.path)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(self.path)

    def delete_tree(self) -> None:
        """Remove the folder and everything under it; a missing folder is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_dir(self.path)


def s3_root(configured: str) -> Place:
    """The `Place` of `s3://bucket/prefix`, on an S3 filesystem configured from the env."""
    location = configured[len(S3_SCHEME) :].strip("/")
    bucket = location.split("/", 1)[0]
    if not bucket:
        raise ObjectStoreError(f"table store root {configured!r}: expected s3://bucket/prefix")
    return Place(s3_filesystem(), location, remote=True)


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem from the AWS variables (see the module doc); one per setting."""
    env = os.environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    token = env.get("AWS_SESSION_TOKEN")
    for value in (secret, token):
        register_secret(value)
    if bool(key) != bool(secret):
        raise ObjectStoreError(
            "table store on S3: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "neither (then the AWS SDK's default credentials apply)"
        )
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    endpoint = next((env[name] for name in _ENDPOINT_VARS if env.get(name)), None)
    return _filesystem(key or None, secret or None, token or None, region, endpoint)


@functools.lru_cache(maxsize=8)
def _filesystem(
    key: str | None,
    secret: str | None,
    token: str | None,
    region: str | None,
    endpoint: str | None,
) -> pafs.S3FileSystem:
    # Cached: every step opens the store several times, and a filesystem keeps its
    # connection pool. The cache key holds the secret in memory only, as os.environ does.
    options: dict[str, object] = {}
    if key and secret:
        options.update(access_key=key, secret_key=secret, session_token=token)
    if region:
        options["region"] = region
    if endpoint:
        options.update(_endpoint_options(endpoint))
    try:
        return pafs.S3FileSystem(**options)
    except (OSError, ValueError) as exc:
        raise ObjectStoreError(redact(f"table store on S3: {exc}")) from None


def _endpoint_options(endpoint: str) -> dict[str, object]:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ObjectStoreError(
            redact(
                f"{ENDPOINT_ENV} / AWS_ENDPOINT_URL {endpoint!r}: expected "
                "http://host:port or https://host[:port]"
            )
        )
    # pyarrow wants the host without the scheme; path-style addressing is its default
    # with an endpoint override, which MinIO and moto need.
    return {"endpoint_override": parts.netloc + parts.path.rstrip("/"), "scheme": parts.scheme}
