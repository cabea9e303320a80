"""Benchmark: seconds per user of notebook 05's generating methods at several batch sizes, on the same prompts.

Generation is the largest cost of notebook 05 on the ``cpu`` preset (PALR_v1 and PALR_v2 write ten answer lines
for each of 1,000 users, about 1.3 and 1.5 s per user in the recorded runs). On a CPU a decoding step of a 135M
model is mostly fixed cost (thirty layers of small matmuls), so more prompts per step should cost little more
than one, while a batch runs until its longest answer ends, which costs more the larger the batch. This
benchmark measures both effects together: PALR_v2's constrained generation (``Reranker.generate_v2``, as
notebook 05 runs it, length-sorted batches) for the same users at each batch size, the smallest one twice
(first and last) so that the machine's drift shows, and how many answers differ from the first arm's (padding
more prompts together may change a float's last bits, and a greedy answer with it).

The prompts are real (each user's last training items and titles), the candidates are 20 random unseen items
of the catalogue and the model is the preset's base LLM without an adapter: the time depends on the prompts'
and the answers' lengths, not on what was learned; compare the answer lengths printed with the recorded run's.
Needs notebook 01's output in ``--artifact-dir``.

    .venv/bin/python benchmarks/generation_batch.py --artifact-dir artifacts/benchmarks/twin_warm_ml1m
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import data_name, load_run_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.core.sampling import evaluation_users
from palr_utils.evaluation.cases import EvalCase
from palr_utils.evaluation.methods import run_method
from palr_utils.evaluation.rerankers import Reranker
from palr_utils.llm.loading import load_llm


def random_cases(data, users, n_history: int, n_candidates: int, seed: int) -> list[EvalCase]:
    """Each user's last ``n_history`` training items and ``n_candidates`` random items they have not seen."""
    rng = np.random.default_rng(seed)
    cases = []
    for user in users:
        history = [int(i) for i in data.train[user][-n_history:]]
        seen = {int(i) for i in data.train[user]}
        pool = np.setdiff1d(np.arange(data.n_items), list(seen))
        listed = [int(i) for i in rng.choice(pool, n_candidates, replace=False)]
        cases.append(EvalCase(int(user), listed[0], history, listed, listed, seen, []))
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-dir", required=True, help="a run whose notebook 01 ran")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    config, processed, data = load_run_data(args.artifact_dir)
    preset = config.preset
    users = evaluation_users(data.n_users, preset.n_eval_users, config.seed)[: args.users]
    cases = random_cases(data, users, preset.instructions.n_history, preset.rerank_candidates, config.seed)
    titles = processed.items.sort_values("item")["title"].tolist()
    tokenizer, model = load_llm(preset.llm)
    reranker = Reranker(tokenizer, model, titles, processed.info["domain"], preset.instructions.max_title_chars)
    method = lambda batch: reranker.generate_v2(batch, preset.rerank_max_new_tokens)  # noqa: E731
    method(cases[:2])  # warm-up
    tmp = Path(tempfile.mkdtemp(prefix="generation_batch_"))
    arms, first_outputs = [], None
    for position, batch_size in enumerate([*args.batch_sizes, args.batch_sizes[0]]):
        started = time.perf_counter()
        frame = run_method(method, cases, tmp / f"arm{position}_bs{batch_size}.jsonl", batch_size,
                           sort_by=reranker.text_length)  # fmt: skip
        seconds = time.perf_counter() - started
        outputs = frame.set_index("user")["raw_output"]
        first_outputs = outputs if first_outputs is None else first_outputs
        tokens = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in outputs]
        arms.append({"batch_size": batch_size, "seconds": round(seconds, 2),
                     "seconds_per_user": round(seconds / len(cases), 4),
                     "mean_answer_tokens": round(float(np.mean(tokens)), 1),
                     "answers_differing_from_first_arm": int((outputs != first_outputs.loc[outputs.index]).sum())})
        print(arms[-1], flush=True)
    baseline = np.mean([arms[0]["seconds_per_user"], arms[-1]["seconds_per_user"]])
    for entry in arms:
        entry["speed_up_vs_first_batch_size"] = round(float(baseline / entry["seconds_per_user"]), 3)
    result = {"machine": machine(), "model": preset.llm.name, "method": "PALR_v2 generation (base model)",
              "users": len(cases), "max_new_tokens": preset.rerank_max_new_tokens,
              "preset_batch_size": preset.rerank_batch_size, "arms": arms,
              "drift_first_vs_last_arm": round(arms[-1]["seconds_per_user"] / arms[0]["seconds_per_user"], 3)}
    out = args.out or f"benchmarks/results/generation_batch_{data_name(processed, args.artifact_dir)}_cpu.json"
    write_json(result, Path(out))
    print("written", out)


if __name__ == "__main__":
    main()
