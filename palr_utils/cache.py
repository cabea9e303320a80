"""A resumable, per-key JSONL cache for long LLM loops (profiles, re-ranking).

Records are appended batch by batch and flushed to disk, so an interrupted run
loses at most the batch in flight; the next run skips the keys already done. A
line cut short by the interruption is dropped on the next read.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from palr_utils.io import atomic_path, ensure_identity

SECONDS = "seconds"


def read_jsonl(path: str | Path, key: str) -> pd.DataFrame:
    """All records of the cache (the last one per ``key``); an incomplete last line is dropped with a warning."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=[key])
    records, lines = [], path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ValueError(f"{path}:{number} is not valid JSON; delete the file to start over") from None
            warnings.warn(f"{path}: dropping an incomplete last line (an interrupted run)", stacklevel=2)
            with atomic_path(path) as tmp:
                tmp.write_text("".join(f"{json.dumps(r)}\n" for r in records))
    return pd.DataFrame(records).drop_duplicates(key, keep="last") if records else pd.DataFrame(columns=[key])


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))
        handle.flush()
        os.fsync(handle.fileno())


def resumable_map(
    keys: Sequence[int],
    inputs: Sequence,
    work: Callable[[list], list[dict]],
    cache_path: str | Path,
    key: str = "user",
    batch_size: int = 16,
    desc: str = "batches",
    identity: dict | None = None,
) -> pd.DataFrame:
    """Run ``work`` on the inputs of keys not yet cached, in batches; return the records of ``keys`` in order.

    ``work`` maps a list of inputs to one dict per input; the key and the seconds per input are added.
    With ``identity`` (what produces the records: model, settings), it is kept next to the cache as
    ``<name>.identity.json`` and a cache written with another identity is refused, never extended.
    """
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    if identity is not None:
        ensure_identity(cache_path.with_suffix(".identity.json"), identity, cache_path)
    done = set(read_jsonl(cache_path, key)[key].astype(int))
    todo = [(int(k), x) for k, x in zip(keys, inputs, strict=True) if int(k) not in done]
    for start in tqdm(range(0, len(todo), batch_size), desc=desc, unit="batch", disable=not todo):
        chunk = todo[start : start + batch_size]
        started = time.perf_counter()
        records = work([x for _, x in chunk])
        per_input = (time.perf_counter() - started) / len(chunk)
        append_jsonl(cache_path, [{key: k, **r, SECONDS: per_input} for (k, _), r in zip(chunk, records, strict=True)])
    cached = read_jsonl(cache_path, key).set_index(key)
    return cached.loc[[int(k) for k in keys]].reset_index()
