"""Downloads against a local HTTP server: verified, cached, corrupt files discarded, offline explained."""

from __future__ import annotations

import functools
import gzip
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

import palr_utils.data as data_module
from palr_utils.core.hashing import sha256_file
from palr_utils.data.download import DownloadError, RemoteFile, fetch
from palr_utils.presets import resolve_config


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_verified_download_is_cached(server, tmp_path):
    root, url = server
    (root / "file.bin").write_bytes(b"real data")
    remote = RemoteFile(f"{url}/file.bin", "file.bin", sha256_file(root / "file.bin"))
    cache = tmp_path / "cache"
    assert fetch(remote, cache, progressbar=False).read_bytes() == b"real data"
    (root / "file.bin").unlink()  # a second call must not need the server
    assert fetch(remote, cache, progressbar=False).read_bytes() == b"real data"


def test_corrupt_download_is_discarded_and_raises(server, tmp_path):
    root, url = server
    (root / "file.bin").write_bytes(b"truncated")
    remote = RemoteFile(f"{url}/file.bin", "file.bin", "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="does not match its sha256"):
        fetch(remote, cache, progressbar=False)
    assert _cache_files(cache) == []


def test_corrupted_cache_is_replaced_by_a_fresh_download(server, tmp_path):
    root, url = server
    (root / "file.bin").write_bytes(b"real data")
    remote = RemoteFile(f"{url}/file.bin", "file.bin", sha256_file(root / "file.bin"))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.bin").write_bytes(b"bit rot")
    assert fetch(remote, cache, progressbar=False).read_bytes() == b"real data"


def test_offline_error_names_the_way_out_and_moves_the_corrupt_file_aside(tmp_path):
    remote = RemoteFile(f"http://127.0.0.1:{_closed_port()}/ml-1m.zip", "ml-1m.zip", "0" * 64)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-1m.zip").write_bytes(b"half a zip")
    with pytest.raises(DownloadError, match=r"(?s)Could not download.*DATA_DIR.*custom"):
        fetch(remote, cache, progressbar=False)
    # nothing under the expected name can be read by mistake, and the user's own file is not lost
    assert _cache_files(cache) == ["ml-1m.zip.failed-checksum"]
    assert (cache / "ml-1m.zip.failed-checksum").read_bytes() == b"half a zip"


def test_unpublished_checksum_checks_gzip_then_pins_the_hash(server, tmp_path):
    root, url = server
    good = gzip.compress(b'{"a": 1}\n' * 100)
    (root / "reviews.json.gz").write_bytes(good[:-10])  # truncated: the CRC check must fail
    remote = RemoteFile(f"{url}/reviews.json.gz", "reviews.json.gz", None)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="not a complete gzip"):
        fetch(remote, cache, progressbar=False)
    assert _cache_files(cache) == []

    (root / "reviews.json.gz").write_bytes(good)
    path = fetch(remote, cache, progressbar=False)
    assert (cache / "reviews.json.gz.sha256").read_text().strip() == sha256_file(path)
    path.write_bytes(b"tampered")  # later corruption is caught by the pinned hash
    assert fetch(remote, cache, progressbar=False).read_bytes() == good


def test_ml_1m_is_downloaded_unpacked_and_parsed(server, tmp_path, movielens_dir, monkeypatch):
    root, url = server
    with zipfile.ZipFile(root / "ml-1m.zip", "w") as bundle:
        for path in movielens_dir.iterdir():
            bundle.write(path, f"ml-1m/{path.name}")
    remote = RemoteFile(f"{url}/ml-1m.zip", "ml-1m.zip", sha256_file(root / "ml-1m.zip"))
    monkeypatch.setattr(data_module, "ML_1M_ZIP", remote)
    config = resolve_config("cpu", "ml-1m", str(tmp_path / "cache"), str(tmp_path / "out"))
    raw = data_module.load_raw_dataset(config)
    assert len(raw.interactions) == 37
    assert (tmp_path / "cache" / "ml-1m" / "ratings.dat").exists()
    (root / "ml-1m.zip").unlink()  # the unpacked folder is reused from now on
    assert len(data_module.load_raw_dataset(config).interactions) == 37
