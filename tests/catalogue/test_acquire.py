"""Acquisition against a real local HTTP server: resume, size checks, safe extraction, and
the whole path from archives to an ingested catalogue."""

from __future__ import annotations

import dataclasses
import io
import os
import random
import tarfile

import pytest
from support.abo_tree import REAL_LISTING, AboTree
from support.archive_server import ArchiveServer, tar_folder

from mars_core.catalogue.acquire import (
    DownloadError,
    UnsafeArchiveError,
    acquire_abo,
    download,
    safe_extract,
)
from mars_core.catalogue.ingest import ingest

BLOB = random.Random(0).randbytes(300_000)


@pytest.fixture()
def server():
    with ArchiveServer() as running:
        running.files["blob.tar"] = BLOB
        yield running


def test_download_resumes_a_partial_file(server, tmp_path):
    dest = tmp_path / "blob.tar"
    (tmp_path / "blob.tar.part").write_bytes(BLOB[:1000])
    download(f"{server.url}/blob.tar", dest)
    assert dest.read_bytes() == BLOB
    assert not (tmp_path / "blob.tar.part").exists()
    assert server.gets() == [("/archives/blob.tar", "bytes=1000-")]


def test_a_server_that_ignores_range_gets_a_fresh_download(server, tmp_path):
    server.honour_range = False
    (tmp_path / "blob.tar.part").write_bytes(b"stale bytes from another file")
    assert download(f"{server.url}/blob.tar", tmp_path / "blob.tar").read_bytes() == BLOB


def test_a_cut_transfer_fails_by_size_then_resumes(server, tmp_path):
    server.cut_next = 5000
    dest = tmp_path / "blob.tar"
    with pytest.raises(DownloadError, match=f"got 5000 of {len(BLOB)} bytes; run again"):
        download(f"{server.url}/blob.tar", dest)
    assert not dest.exists() and (tmp_path / "blob.tar.part").stat().st_size == 5000
    download(f"{server.url}/blob.tar", dest)
    assert dest.read_bytes() == BLOB
    assert server.gets()[-1] == ("/archives/blob.tar", "bytes=5000-")


def test_configured_size_is_checked_before_downloading(server, tmp_path):
    with pytest.raises(DownloadError, match=r"data\.archive_sizes says 12"):
        download(f"{server.url}/blob.tar", tmp_path / "blob.tar", expected_size=12)
    assert server.gets() == []
    download(f"{server.url}/blob.tar", tmp_path / "blob.tar", expected_size=len(BLOB))
    download(f"{server.url}/blob.tar", tmp_path / "blob.tar", expected_size=len(BLOB))
    assert len(server.gets()) == 1  # a complete file is not fetched again


def test_missing_archive_is_named(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/nope.tar", tmp_path / "nope.tar")


def evil_tar(path, name, *, link_to=None):
    with tarfile.open(path, "w") as tar:
        good = tarfile.TarInfo("listings/ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        member = tarfile.TarInfo(name)
        if link_to:
            member.type, member.linkname = tarfile.SYMTYPE, link_to
            tar.addfile(member)
        else:
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize(
    ("name", "link_to", "message"),
    [
        ("../escape.txt", None, "outside"),
        ("listings/../../escape.txt", None, "outside"),
        ("/tmp/mars-absolute-escape.txt", None, "outside"),
        ("listings/link", "../../escape.txt", "link"),
    ],
)
def test_extraction_refuses_members_that_escape(tmp_path, name, link_to, message):
    archive = evil_tar(tmp_path / "evil.tar", name, link_to=link_to)
    target = tmp_path / "deep" / "target"
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, target)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep/escape.txt").exists()
    assert not os.path.exists("/tmp/mars-absolute-escape.txt")
    assert list(target.iterdir()) == []  # checked before anything is written


def test_archives_to_catalogue(server, tmp_path, cfg):
    tree = AboTree(tmp_path / "source")
    tree.add(REAL_LISTING | {"other_image_id": []})
    tree.image("81iZlv3bjpL")
    tree.write()
    server.files["abo-listings.tar"] = tar_folder(tree.root, "listings", tmp_path / "l.tar")
    server.files["abo-images-small.tar"] = tar_folder(tree.root, "images", tmp_path / "i.tar")
    data = dataclasses.replace(
        cfg.data,
        source="abo",
        acquire="download",
        base_url=server.url,
        archives=["abo-listings.tar", "abo-images-small.tar"],
        archive_sizes={"abo-listings.tar": len(server.files["abo-listings.tar"])},
        raw_dir=str(tmp_path / "abo"),
        download_dir=str(tmp_path / "downloads"),
        rooms_dir="",
        truth_file="",
        out_dir=str(tmp_path / "out"),
    )
    assert acquire_abo(data) == (tmp_path / "abo").resolve()
    marker = tmp_path / "abo/.acquired/abo-images-small.tar.json"
    stamp = marker.stat().st_mtime_ns
    assert ingest(data).products == 1
    acquire_abo(data)  # again: nothing fetched, nothing extracted
    assert len(server.gets()) == 2 and marker.stat().st_mtime_ns == stamp
    assert not list((tmp_path / "abo").glob(".extracting-*"))
