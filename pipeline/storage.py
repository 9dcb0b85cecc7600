"""Where a bar store's objects live: a local directory or an S3-compatible bucket.

A :class:`Location` is a store URL and nothing else (so it travels in a Dask task graph
without a secret): a local path, or ``s3://bucket/prefix`` for AWS S3 and every
S3-compatible service (Cloudflare R2, Backblaze B2, MinIO). Each process opens the bucket
itself with its own environment's credentials, the standard variables ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL`` (non-AWS endpoints).

Both backends offer the same few operations, all a store needs: whole-object get and put
under immutable names, a conditional put of one small object (the store's pointer), listing
and deleting (only for collecting garbage; readers never list). The conditional put is what
makes a commit atomic without rename: ``If-None-Match: *`` creates the pointer only when
there is none, ``If-Match: <etag>`` replaces it only when it is still the version the writer
read; S3 and R2 both honour these. On a local disk the same check runs under an exclusive
``flock`` and the pointer is replaced with an atomic rename.

S3 goes through s3fs (fsspec), not ``pyarrow.fs``: conditional writes need ``IfMatch`` /
``IfNoneMatch`` on PutObject, which botocore passes through and Arrow's filesystem does not
expose.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError, StoreError

SCHEMES = ("s3",)
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


class Conflict(Exception):
    """A conditional put found the object changed (or present) since it was read."""


@dataclass(frozen=True)
class Location:
    """A store's URL: an absolute local path or ``s3://bucket/prefix`` (no credentials)."""

    url: str

    @classmethod
    def parse(cls, value: str | os.PathLike[str]) -> Location:
        """The location ``value`` names; a one-line :class:`ConfigError` for a bad URL."""
        text = str(value).strip()
        if "://" not in text:
            return cls(str(Path(text).expanduser().absolute()))
        parts = urlsplit(text)
        if parts.scheme == "file":
            return cls(str(Path(parts.path).absolute()))
        if parts.scheme not in SCHEMES:
            raise ConfigError(
                f"unsupported store URL scheme {parts.scheme!r}; use a local path or "
                "s3://bucket/prefix (AWS S3, Cloudflare R2, Backblaze B2, MinIO)"
            )
        if "@" in parts.netloc or parts.query:
            raise ConfigError(
                "put object-storage credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "not in the store URL"
            )
        if not parts.netloc:
            raise ConfigError(f"store URL {text!r} names no bucket; use s3://bucket/prefix")
        prefix = parts.path.strip("/")
        return cls(f"s3://{parts.netloc}" + (f"/{prefix}" if prefix else ""))

    @property
    def local(self) -> bool:
        return not self.url.startswith("s3://")

    def __str__(self) -> str:
        return self.url

    def child(self, key: str) -> str:
        """The full name of object ``key`` (a path, or a bucket key without the scheme)."""
        base = self.url.removeprefix("s3://")
        return f"{base}/{key}" if not self.local else str(Path(base) / key)

    def display(self, key: str) -> str:
        """``key``'s name as people read it (a path or an s3:// URL)."""
        return self.child(key) if self.local else f"s3://{self.child(key)}"

    # -- objects ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The whole object ``key``; FileNotFoundError when there is none."""
        if self.local:
            return Path(self.child(key)).read_bytes()
        found = self.get_versioned(key)  # one GET (s3fs's cat_file asks HEAD first)
        if found is None:
            raise FileNotFoundError(self.display(key))
        return found[0]

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object ``key`` and its version tag (ETag), or None when there is none."""
        if self.local:
            try:
                data = Path(self.child(key)).read_bytes()
            except FileNotFoundError:
                return None
            return data, _etag(data)
        bucket, name = self._split(key)
        try:
            answer = self._s3(
                "read", key, lambda fs: fs.call_s3("get_object", Bucket=bucket, Key=name)
            )
        except FileNotFoundError:
            return None
        body = answer["Body"]
        try:
            data = _read_body(body)
        finally:
            with contextlib.suppress(Exception):
                body.close()
        return data, answer["ETag"].strip('"')

    def put(self, key: str, data: bytes) -> None:
        """Write object ``key`` (a new, immutable name: nothing reads it before a commit)."""
        if self.local:
            path = Path(self.child(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        self._s3("write", key, lambda fs: fs.pipe_file(self.child(key), data))

    def put_if(self, key: str, data: bytes, etag: str | None) -> None:
        """Write ``key`` only if it is still at version ``etag`` (absent when None); raise
        :class:`Conflict` otherwise."""
        if self.local:
            self._put_if_local(key, data, etag)
            return
        bucket, name = self._split(key)
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": f'"{etag}"'}

        def put(fs: Any) -> None:
            try:
                fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, **condition)
            except (FileExistsError, FileNotFoundError):  # present, or gone since it was read
                raise Conflict(key) from None
            except OSError as exc:
                if _conflict(exc):
                    raise Conflict(key) from None
                raise

        self._s3("write", key, put)

    def listing(self, folder: str) -> list[tuple[str, float]]:
        """Keys under ``folder`` with their modification times (epoch seconds)."""
        if self.local:
            root = Path(self.child(folder))
            if not root.is_dir():
                return []
            return [(f"{folder}/{p.name}", p.stat().st_mtime) for p in root.iterdir()]
        try:
            found = self._s3("list", folder, lambda fs: fs.ls(self.child(folder), detail=True))
        except FileNotFoundError:
            return []
        base = self.child("")
        return [
            (info["name"].removeprefix(base), _epoch(info.get("LastModified")))
            for info in found
            if info.get("type") == "file"
        ]

    def delete(self, keys: list[str]) -> None:
        """Remove ``keys`` (those already gone are fine)."""
        if not keys:
            return
        if self.local:
            for key in keys:
                Path(self.child(key)).unlink(missing_ok=True)
            return
        self._s3("delete", keys[0], lambda fs: fs.rm([self.child(k) for k in keys]))

    def exists(self, key: str) -> bool:
        if self.local:
            return Path(self.child(key)).is_file()
        return self._s3("read", key, lambda fs: fs.exists(self.child(key)))

    def make(self) -> None:
        """Create the local directory (a bucket must exist already)."""
        if self.local:
            Path(self.url).mkdir(parents=True, exist_ok=True)

    # -- helpers ---------------------------------------------------------------------------

    def _put_if_local(self, key: str, data: bytes, etag: str | None) -> None:
        import fcntl

        path = Path(self.child(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            try:
                found: str | None = _etag(path.read_bytes())
            except FileNotFoundError:
                found = None
            if found != etag:
                raise Conflict(key)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def _split(self, key: str) -> tuple[str, str]:
        bucket, _, name = self.child(key).partition("/")
        return bucket, name

    def _s3(self, action: str, key: str, call: Any) -> Any:
        try:
            return call(_s3fs())
        except FileNotFoundError as exc:
            if action in ("read", "list"):
                raise
            raise self._error(action, key, exc) from None
        except (OSError, ValueError) as exc:
            raise self._error(action, key, exc) from None
        except Exception as exc:  # botocore's credential and endpoint errors are not OSErrors
            if type(exc).__module__.split(".")[0] in {"botocore", "aiobotocore", "aiohttp"}:
                raise self._error(action, key, exc) from None
            raise

    def _error(self, action: str, key: str, exc: BaseException) -> StoreError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"cannot {action} {self.display(key)} ({first}); check the bucket and the "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL settings"
        )


@functools.cache
def _s3fs() -> Any:
    """This process's S3 filesystem, from the standard AWS variables (imported on first use)."""
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    return s3fs.S3FileSystem(endpoint_url=endpoint, use_listings_cache=False)


def _read_body(body: Any) -> bytes:
    from fsspec.asyn import sync

    fs = _s3fs()
    return sync(fs.loop, body.read)


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _epoch(value: Any) -> float:
    if value is None:
        return time.time()
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _conflict(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code", ""))
    status = str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))
    return code in _CONFLICT_CODES or status in {"412", "409"}
