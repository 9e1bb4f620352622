"""A substituted raw disk keeps its holes: the blob is written block by block, all-zero blocks skipped, and
hashed as it arrives (no second read of gigabytes)."""

import hashlib
import os
from contextlib import contextmanager

import pytest

from builder.build.binary_cache import SPARSE_BLOCK, _download_sparse


class FakeResponse:
    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk = data, chunk

    def raise_for_status(self):
        pass

    def iter_content(self, chunk_size):
        for offset in range(0, len(self.data), self.chunk):    # chunks the size the server sends, not ours
            yield self.data[offset:offset + self.chunk]


class FakeClient:
    def __init__(self, data: bytes, chunk: int):
        self.response = FakeResponse(data, chunk)

    @contextmanager
    def get_blob(self, container, digest, stream):
        yield self.response


@pytest.mark.parametrize("chunk", [7777, 1 << 20])
def test_zero_blocks_become_holes_and_the_bytes_and_hash_are_the_blobs(tmp_path, chunk):
    data = b"MBR" + bytes(SPARSE_BLOCK * 64) + b"root filesystem" + bytes(SPARSE_BLOCK * 64 + 5)
    path = tmp_path / "default.raw"
    digest = _download_sparse(FakeClient(data, chunk), None, "sha256:x", path)
    assert digest == hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data
    assert path.stat().st_blocks * 512 < len(data) // 4, "the zero blocks were written out"


def test_an_existing_file_is_never_written_through(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, tmp_path / "default.raw")
    with pytest.raises(FileExistsError):
        _download_sparse(FakeClient(b"data", 4), None, "sha256:x", tmp_path / "default.raw")
    assert target.read_text() == "keep"
