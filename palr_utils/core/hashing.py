"""One way to fingerprint things: the SHA-256 of some text, arrays or a file.

Fingerprints tie every artifact to what made it (a checkpoint to its data, a cache to its prompts, a download
to its published checksum), so that nothing stale is ever reused silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def sha256_hex(parts: Iterable[str | bytes | np.ndarray], length: int | None = None) -> str:
    """The SHA-256 of ``parts`` fed in order (text as UTF-8, arrays as their raw bytes), in hex; the first
    ``length`` characters when given (a short fingerprint for names and identities)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        digest.update(part)
    return digest.hexdigest()[:length] if length else digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks (downloads can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
