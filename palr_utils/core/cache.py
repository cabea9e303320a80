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

from palr_utils.core.hashing import sha256_hex
from palr_utils.core.io import StaleArtifactError, atomic_path, ensure_identity, progress_bars_disabled

SECONDS = "seconds"
INPUT = "input_sha256"  # with check_inputs: the fingerprint of the input a record was made from


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
                raise ValueError(
                    f"{path}:{number} is not valid JSON, and it is not the last line, so no interrupted run left it: "
                    "the file was changed by hand or by another program. Delete it to start over."
                ) from None
            warnings.warn(f"{path}: dropping an incomplete last line (an interrupted run)", stacklevel=2)
            with atomic_path(path) as tmp:
                tmp.write_text("".join(f"{json.dumps(r)}\n" for r in records))
    return pd.DataFrame(records).drop_duplicates(key, keep="last") if records else pd.DataFrame(columns=[key])


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    """Append one line per record and flush it to disk.

    A last line without its line break (a run killed between writing a record and its newline) is ended first,
    so the new records never glue onto it.
    """
    path = Path(path)
    ends_open = False
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            ends_open = handle.read(1) != b"\n"
    with open(path, "a") as handle:
        handle.write(("\n" if ends_open else "") + "".join(json.dumps(r) + "\n" for r in records))
        handle.flush()
        os.fsync(handle.fileno())


def input_fingerprint(value: object) -> str:
    """A short hash of one input (a prompt, a case): a record is reused only for the very input it was made from."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return sha256_hex([text], length=16)


def _refuse_changed_inputs(cached: pd.DataFrame, wanted: dict[int, str], key: str, cache_path: Path) -> None:
    """Raise when a cached record was made from another input than the one asked for now."""
    if cached.empty:
        return
    if INPUT not in cached.columns:
        raise StaleArtifactError(
            f"{cache_path} holds records without the fingerprint of their inputs (an older version wrote it), so "
            "they cannot be checked against today's prompts. Delete it to generate them again."
        )
    stored = dict(zip(cached[key].astype(int), cached[INPUT], strict=True))
    changed = [k for k, digest in wanted.items() if k in stored and stored[k] != digest]
    if changed:
        raise StaleArtifactError(
            f"{cache_path} holds records of {len(changed):,} {key}(s) (e.g. {changed[:5]}) made from other inputs "
            "than today's (the data, the prompt or the seed changed). Delete the file to generate them again, or "
            "use another ARTIFACT_DIR."
        )


def resumable_map(
    keys: Sequence[int],
    inputs: Sequence,
    work: Callable[[list], list[dict]],
    cache_path: str | Path,
    *,
    key: str = "user",
    batch_size: int = 16,
    desc: str = "batches",
    identity: dict | None = None,
    check_inputs: bool = False,
    sort_by: Callable[[object], int] | None = None,
) -> pd.DataFrame:
    """Run ``work`` on the inputs of keys not yet cached, in batches; return the records of ``keys`` in order.

    ``work`` maps a list of inputs to one dict per input; the key and the seconds per input are added.
    With ``identity`` (what produces the records: model, settings), it is kept next to the cache as
    ``<name>.identity.json`` and a cache written with another identity is refused, never extended.
    With ``check_inputs``, each record also keeps a fingerprint of its input, and a cached record whose
    input has changed since (another prompt for the same user) is refused rather than returned.
    With ``sort_by`` (an input's length, e.g. its prompt's characters), batches are formed longest first from
    inputs of similar length: a batch is padded to its longest sequence, so mixing lengths wastes compute.
    The records come back in the order of ``keys`` either way.
    """
    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    if identity is not None:
        ensure_identity(cache_path.with_suffix(".identity.json"), identity, cache_path)
    keys = [int(k) for k in keys]
    cached = read_jsonl(cache_path, key)
    fingerprints = {k: input_fingerprint(x) for k, x in zip(keys, inputs, strict=True)} if check_inputs else {}
    if check_inputs:
        _refuse_changed_inputs(cached, fingerprints, key, cache_path)
    done = set(cached[key].astype(int))
    todo = [(k, x) for k, x in zip(keys, inputs, strict=True) if k not in done]
    if sort_by is not None:
        todo.sort(key=lambda pair: -sort_by(pair[1]))  # stable: equal lengths keep the keys' order
    bar_off = not todo or progress_bars_disabled()
    for start in tqdm(range(0, len(todo), batch_size), desc=desc, unit="batch", disable=bar_off):
        chunk = todo[start : start + batch_size]
        started = time.perf_counter()
        records = work([x for _, x in chunk])
        per_input = (time.perf_counter() - started) / len(chunk)
        extra = [{INPUT: fingerprints[k]} if check_inputs else {} for k, _ in chunk]
        append_jsonl(
            cache_path,
            [{key: k, **r, **e, SECONDS: per_input} for (k, _), r, e in zip(chunk, records, extra, strict=True)],
        )
    cached = read_jsonl(cache_path, key).set_index(key)
    return cached.loc[keys].reset_index()
