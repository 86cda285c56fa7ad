"""File storage behind one small interface: a local folder (default) or S3 (aioboto3).

Keys are relative slash-separated names (`certificates/2026/ab12.pdf`); anything that could
escape the root (`..`, absolute paths, odd characters) is refused before touching storage.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from lms_live.core.errors import BadRequest, NotFound
from lms_live.settings import Settings

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """Return the key if it is a safe relative name, else raise BadRequest."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise BadRequest("Invalid storage key.")
    return key


class Storage(Protocol):
    """Binary objects by key."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class LocalStorage:
    """Objects as files under one folder; writes are atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
            try:
                partial.write_bytes(data)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)

        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound("No such file.") from exc

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None


class S3Storage:
    """Objects in an S3 bucket under a prefix, through one long-lived aioboto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str, stack: AsyncExitStack) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._stack = stack

    @classmethod
    async def open(cls, settings: Settings, url: str) -> S3Storage:
        import aioboto3  # only deployments on S3 pay for this import
        from botocore.config import Config

        parts = urlsplit(url)
        session = aioboto3.Session()
        stack = AsyncExitStack()
        secret = settings.s3_secret_access_key
        client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region,
                aws_access_key_id=settings.s3_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
            )
        )
        return cls(client, parts.netloc, parts.path, stack)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )

    async def get(self, key: str) -> bytes:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound("No such file.") from exc
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        await self._stack.aclose()


async def open_storage(settings: Settings) -> Storage:
    """The storage STORAGE_URL names: `file:///path` (default under DATA_DIR) or `s3://bucket/prefix`."""
    url = settings.effective_storage_url
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        return await S3Storage.open(settings, url)
    if scheme == "file":
        return LocalStorage(Path(urlsplit(url).path))
    raise ValueError(f"STORAGE_URL must start with file:// or s3://, got {url!r}")
