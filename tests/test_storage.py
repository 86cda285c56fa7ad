"""File storage: the local folder and S3 (moto's server, in-process) behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from botocore.session import get_session
from moto.server import ThreadedMotoServer

from lms_live.core.errors import BadRequest, NotFound
from lms_live.core.storage import LocalStorage, S3Storage, Storage, check_key, open_storage
from tests.conftest import free_port, make_settings

BUCKET = "lms-test"

# Tests on the module-wide S3 client run in the module's event loop.
shared_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        """A plain synchronous client, to look at the bucket behind the storage's back."""
        return get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3Server(f"http://127.0.0.1:{port}")
    s3.client().create_bucket(Bucket=BUCKET)
    yield s3
    server.stop()


def s3_settings(tmp_path: Path, worker_id: str, s3: S3Server, url: str) -> Any:
    return make_settings(
        tmp_path,
        worker_id,
        pg_url=None,
        redis_url=None,
        storage_url=url,
        s3_endpoint_url=s3.endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_region="us-east-1",
    )


@pytest.fixture
def prefix() -> str:
    return f"run-{uuid.uuid4().hex}/files"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_s3(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[S3Storage]:
    """One S3 client for the module (building a client parses botocore's models: slow)."""
    tmp_path = tmp_path_factory.mktemp("s3")
    store = await open_storage(s3_settings(tmp_path, "s3", s3_server, f"s3://{BUCKET}/shared"))
    assert isinstance(store, S3Storage)
    yield store
    await store.close()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    shared: S3Storage = request.getfixturevalue("shared_s3")
    # The module's client under a prefix of this test's own.
    return S3Storage(shared.client, BUCKET, prefix, AsyncExitStack())


# --- behaviour on both backends ----------------------------------------------------------------


@shared_loop
async def test_put_then_get_round_trips_bytes(storage: Storage) -> None:
    data = bytes(range(256)) * 4
    await storage.put("certificates/2026/ab12.pdf", data, content_type="application/pdf")
    assert await storage.get("certificates/2026/ab12.pdf") == data
    assert await storage.exists("certificates/2026/ab12.pdf")


@shared_loop
async def test_empty_object(storage: Storage) -> None:
    await storage.put("empty.bin", b"", content_type="application/octet-stream")
    assert await storage.exists("empty.bin")
    assert await storage.get("empty.bin") == b""


@shared_loop
async def test_put_overwrites(storage: Storage) -> None:
    await storage.put("a.txt", b"first version", content_type="text/plain")
    await storage.put("a.txt", b"second", content_type="text/plain")
    assert await storage.get("a.txt") == b"second"


@shared_loop
async def test_missing_object(storage: Storage) -> None:
    assert not await storage.exists("nope.txt")
    with pytest.raises(NotFound):
        await storage.get("nope.txt")
    with pytest.raises(NotFound):
        await storage.get("deeper/nope.txt")


@shared_loop
async def test_delete_removes_and_tolerates_missing(storage: Storage) -> None:
    await storage.put("d/x.txt", b"x", content_type="text/plain")
    await storage.put("d/y.txt", b"y", content_type="text/plain")
    await storage.delete("d/x.txt")
    assert not await storage.exists("d/x.txt")
    with pytest.raises(NotFound):
        await storage.get("d/x.txt")
    assert await storage.get("d/y.txt") == b"y"
    await storage.delete("d/x.txt")  # already gone: no error
    await storage.delete("never/there.txt")


@shared_loop
async def test_a_key_that_is_only_a_prefix_of_other_keys_is_not_an_object(
    storage: Storage,
) -> None:
    await storage.put("folder/inner.txt", b"x", content_type="text/plain")
    assert not await storage.exists("folder")
    with pytest.raises(NotFound):
        await storage.get("folder")


async def test_local_concurrent_puts_to_one_key_all_succeed_and_leave_one_whole_value(
    tmp_path: Path,
) -> None:
    store = LocalStorage(tmp_path / "files")
    blobs = [bytes([i]) * 256 * 1024 for i in range(16)]
    for _ in range(3):
        await asyncio.gather(
            *(
                store.put("race/same.bin", blob, content_type="application/octet-stream")
                for blob in blobs
            )
        )
        assert await store.get("race/same.bin") in blobs
    assert sorted(p.name for p in (tmp_path / "files" / "race").iterdir()) == ["same.bin"]


BAD_KEYS = ["../escape.txt", "a/../../b", "/etc/passwd", "a\\b.txt", "a//b", "", "a b", "x.txt\n"]


@shared_loop
async def test_unsafe_keys_are_refused_by_every_operation(storage: Storage) -> None:
    accepted = []
    for key in BAD_KEYS:
        operations = {
            "put": storage.put(key, b"x", content_type="text/plain"),
            "get": storage.get(key),
            "exists": storage.exists(key),
            "delete": storage.delete(key),
        }
        for name, operation in operations.items():
            try:
                await operation
            except BadRequest:
                continue
            except Exception as exc:
                accepted.append((name, key, type(exc).__name__))
            else:
                accepted.append((name, key, "ok"))
    assert accepted == []


# --- check_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["a", "a.txt", "certificates/2026/ab12.pdf", "A-b_c.9/x.y.z", "...", "a/.hidden"]
)
def test_check_key_accepts_safe_relative_names(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "..",
        ".",
        "../x",
        "a/..",
        "a/../b",
        "a/./b",
        "/abs",
        "/",
        "C:\\x",
        "a\\b",
        "\\\\server\\share",
        "",
        "a//b",
        "a/",
        "/a/",
        "a b",
        "a\x00b",
        "é.txt",
        "a:b",
        "a?b",
        "a*b",
        "%2e%2e/x",
        "~/x",
        "x.txt\n",
        "x.txt\r\n",
        "\nx.txt",
    ],
)
def test_check_key_refuses_unsafe_names(key: str) -> None:
    with pytest.raises(BadRequest):
        check_key(key)


# --- local folder ------------------------------------------------------------------------------


async def test_local_files_live_under_the_root_and_no_temp_file_remains(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    await store.put("a/b/c.txt", b"content", content_type="text/plain")
    assert (tmp_path / "root" / "a" / "b" / "c.txt").read_bytes() == b"content"
    await store.put("a/b/c.txt", b"new content", content_type="text/plain")
    assert sorted(p.name for p in (tmp_path / "root" / "a" / "b").iterdir()) == ["c.txt"]
    assert (tmp_path / "root" / "a" / "b" / "c.txt").read_bytes() == b"new content"


async def test_local_refused_key_writes_nothing(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    with pytest.raises(BadRequest):
        await store.put("../outside.txt", b"x", content_type="text/plain")
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "root").exists()


async def test_open_storage_defaults_to_a_folder_under_data_dir(
    tmp_path: Path, worker_id: str
) -> None:
    settings = make_settings(tmp_path, worker_id, pg_url=None, redis_url=None)
    store = await open_storage(settings)
    assert isinstance(store, LocalStorage)
    await store.put("x.txt", b"x", content_type="text/plain")
    assert (tmp_path / "var" / "files" / "x.txt").read_bytes() == b"x"


async def test_open_storage_refuses_unknown_schemes(tmp_path: Path, worker_id: str) -> None:
    settings = make_settings(
        tmp_path, worker_id, pg_url=None, redis_url=None, storage_url="ftp://host/x"
    )
    with pytest.raises(ValueError, match="STORAGE_URL"):
        await open_storage(settings)


# --- S3 ----------------------------------------------------------------------------------------


async def test_s3_object_key_includes_the_prefix_and_content_type_is_stored(
    s3_server: S3Server, tmp_path: Path, worker_id: str, prefix: str
) -> None:
    settings = s3_settings(tmp_path, worker_id, s3_server, f"s3://{BUCKET}/{prefix}/")
    store = await open_storage(settings)
    try:
        await store.put("certificates/c1.pdf", b"%PDF-1.7", content_type="application/pdf")
        await store.put("notes.txt", b"hi", content_type="text/plain; charset=utf-8")
    finally:
        await store.close()
    raw = s3_server.client()
    listed = raw.list_objects_v2(Bucket=BUCKET, Prefix=prefix.split("/")[0])
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"{prefix}/certificates/c1.pdf",
        f"{prefix}/notes.txt",
    ]
    head = raw.head_object(Bucket=BUCKET, Key=f"{prefix}/certificates/c1.pdf")
    assert head["ContentType"] == "application/pdf"
    assert raw.head_object(Bucket=BUCKET, Key=f"{prefix}/notes.txt")["ContentType"] == (
        "text/plain; charset=utf-8"
    )
    body = raw.get_object(Bucket=BUCKET, Key=f"{prefix}/certificates/c1.pdf")["Body"].read()
    assert body == b"%PDF-1.7"


async def test_s3_without_prefix_stores_keys_at_the_bucket_root(
    s3_server: S3Server, tmp_path: Path, worker_id: str
) -> None:
    bucket = f"lms-root-{uuid.uuid4().hex[:12]}"
    raw = s3_server.client()
    raw.create_bucket(Bucket=bucket)
    store = await open_storage(s3_settings(tmp_path, worker_id, s3_server, f"s3://{bucket}"))
    try:
        await store.put("top.txt", b"t", content_type="text/plain")
        assert await store.get("top.txt") == b"t"
    finally:
        await store.close()
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]] == ["top.txt"]


@shared_loop
async def test_s3_reads_objects_written_by_others_under_its_prefix_only(
    s3_server: S3Server, shared_s3: S3Storage, prefix: str
) -> None:
    raw = s3_server.client()
    raw.put_object(Bucket=BUCKET, Key=f"{prefix}/shared.txt", Body=b"inside")
    raw.put_object(Bucket=BUCKET, Key="shared.txt", Body=b"outside")
    store = S3Storage(shared_s3.client, BUCKET, f"/{prefix}/", AsyncExitStack())
    assert await store.get("shared.txt") == b"inside"
    await store.delete("shared.txt")
    assert not await store.exists("shared.txt")
    assert raw.get_object(Bucket=BUCKET, Key="shared.txt")["Body"].read() == b"outside"
