"""Downloads with caching and checksum verification (pooch does the HTTP work).

A verified file is downloaded once into the cache folder (``DATA_DIR``). pooch
streams into a temporary file and moves it into place only after the checksum
matched, so a broken connection or a corrupt mirror never leaves a file that
looks complete.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import pooch
import requests

from palr_utils.core.hashing import sha256_file
from palr_utils.core.io import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web and what it must hash to.

    ``sha256=None`` marks a source that publishes no checksum (the Amazon 2014
    files): such a file is checked for gzip integrity on first download and its
    hash is then pinned next to it, so later corruption is still caught.
    """

    url: str
    fname: str
    sha256: str | None


ML_1M_ZIP = RemoteFile(
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    fname="ml-1m.zip",
    sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
)
_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
BEAUTY_REVIEWS = RemoteFile(f"{_AMAZON_2014}/reviews_Beauty_5.json.gz", "reviews_Beauty_5.json.gz", None)
BEAUTY_META = RemoteFile(f"{_AMAZON_2014}/meta_Beauty.json.gz", "meta_Beauty.json.gz", None)


class DownloadError(RuntimeError):
    """A data set could not be fetched or failed verification."""


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.failed-checksum[-N]`` next to it (never overwriting) and return the new path."""
    aside = path.with_name(f"{path.name}.failed-checksum")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.failed-checksum-{number}")
    path.rename(aside)
    return aside


def _check_gzip(path: Path) -> None:
    """Read a .gz file to the end: a truncated or corrupt file fails its CRC."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError) as error:
        raise DownloadError(f"{path.name} is not a complete gzip file ({error}).") from error


def _pinned_hash_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def fetch(remote: RemoteFile, cache_dir: str | Path, progressbar: bool = True) -> Path:
    """Return the local path of ``remote``, downloading and verifying it if needed.

    Raises :class:`DownloadError` with a way out when the network is missing or
    the file is corrupt; a file that fails verification is deleted.
    """
    cache_dir = Path(cache_dir)
    local = cache_dir / remote.fname
    expected = remote.sha256
    pinned = _pinned_hash_path(local)
    if expected is None and pinned.exists():
        expected = pinned.read_text().strip()

    # A cached file that no longer matches is moved aside before anything else, so a failed re-download can
    # never leave it behind to be read, and a file the user put there by hand is not lost.
    if local.exists() and expected is not None and sha256_file(local) != expected:
        aside = move_aside(local)
        log.warning(
            "%s in %s fails its checksum; moved it to %s and downloading again.", local.name, cache_dir, aside.name
        )
        pinned.unlink(missing_ok=True)
        expected = remote.sha256

    try:
        path = Path(
            pooch.retrieve(
                remote.url,
                known_hash=f"sha256:{expected}" if expected else None,
                fname=remote.fname,
                path=cache_dir,
                progressbar=progressbar,
            )
        )
    except requests.exceptions.RequestException as error:
        raise DownloadError(
            f"Could not download {remote.url} ({type(error).__name__}: {error}). "
            f"Without network, download it elsewhere and put {remote.fname} (or the unpacked "
            f"folder) in DATA_DIR={cache_dir}, or use DATASET='custom' with your own "
            "interactions.tsv and items.tsv in DATA_DIR."
        ) from error
    except ValueError as error:  # pooch's checksum mismatch; it already removed the temp file
        local.unlink(missing_ok=True)
        raise DownloadError(
            f"The download of {remote.url} does not match its sha256 checksum and was discarded "
            f"({error}). Try again later; if it keeps failing the file on the server has changed."
        ) from error

    if remote.sha256 is None and not pinned.exists():
        try:
            _check_gzip(path)
        except DownloadError:
            path.unlink(missing_ok=True)
            raise
        with atomic_path(pinned) as tmp:
            tmp.write_text(sha256_file(path) + "\n")
    return path
