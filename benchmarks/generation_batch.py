"""Benchmark: seconds per user of the generating stages at several batch sizes, on the same prompts.

Generation is the largest cost of notebook 05 on the ``cpu`` preset (PALR_v1 and PALR_v2 write ten answer lines
for each of 1,000 users, about 1.3 and 1.5 s per user in the recorded runs). On a CPU a decoding step of a 135M
model is mostly fixed cost (thirty layers of small matmuls), so more prompts per step should cost little more
than one, while a batch runs until its longest answer ends, which costs more the larger the batch. This
benchmark measures both effects together: PALR_v2's constrained generation (``Reranker.generate_v2``, as
notebook 05 runs it, length-sorted batches) for the same users at each batch size, the smallest one twice
(first and last) so that the machine's drift shows, and how many answers differ from the first arm's (padding
more prompts together may change a float's last bits, and a greedy answer with it).

What is generated:

* without ``--adapter``: the preset's base LLM, PALR_v2's prompt with 20 random unseen candidates. The base model
  never stops early (every answer runs to ``max_new_tokens``), the best case for large batches;
* with ``--adapter v1`` or ``--adapter v2``: the run's own adapter (notebook 04's output) and the run's own cases,
  built as notebook 05 builds them (notebook 03's candidates, notebook 02's keywords). Answers then end where the
  adapter ends them, at different lengths within a batch: the case notebook 05 is in;
* with ``--profiles``: notebook 02's profile generation instead (the base LLM, the evaluated users' profile prompts
  as notebook 02 builds them, ``profile_max_new_tokens``; the preset's ``profile_batch_size`` is the one to beat).

Needs notebook 01's output in ``--artifact-dir`` (with an adapter, notebooks 02-04's too).

    .venv/bin/python benchmarks/generation_batch.py --artifact-dir artifacts/benchmarks/twin_warm_ml1m
    .venv/bin/python benchmarks/generation_batch.py --artifact-dir <run> --adapter v2 --batch-sizes 8 16 32
    .venv/bin/python benchmarks/generation_batch.py --artifact-dir <run> --profiles --batch-sizes 16 32 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (  # benchmarks/common.py (scripts run from this folder)
    data_name,
    evaluation_cases,
    load_run_data,
    machine,
)

from palr_utils.core.io import read_metrics, write_json
from palr_utils.core.sampling import evaluation_users
from palr_utils.evaluation.cases import EvalCase
from palr_utils.evaluation.methods import run_method
from palr_utils.evaluation.rerankers import Reranker
from palr_utils.finetune.runs import adapter_dir
from palr_utils.llm.loading import load_finetuned, load_llm
from palr_utils.profiles import RAW, generate_profiles, llm_profile_writer, preset_profile_prompts


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


def profile_arm(processed, data, users, preset):
    """Notebook 02's profile generation of ``users`` (evaluated users' prompts, base LLM): ``(tokenizer, arm)``
    where ``arm(path, batch_size)`` writes the profiles to ``path`` and returns them (a frame with ``raw_output``)."""
    tokenizer, model = load_llm(preset.llm)
    prompts = preset_profile_prompts([data.train[u] for u in users], users, processed, preset)
    writer = llm_profile_writer(tokenizer, model, preset.profile_max_new_tokens)
    writer(prompts[:2])  # warm-up
    return tokenizer, lambda path, batch_size: generate_profiles(users, prompts, writer, path, batch_size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-dir", required=True, help="a run whose notebook 01 ran")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--adapter",
        choices=["v1", "v2"],
        default=None,
        help="generate with this adapter of the run on its own cases (default: the base model)",
    )
    what.add_argument("--profiles", action="store_true", help="notebook 02's profile generation instead")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    config, processed, data = load_run_data(args.artifact_dir)
    preset = config.preset
    users = evaluation_users(data.n_users, preset.n_eval_users, config.seed)[: args.users]
    titles = processed.items.sort_values("item")["title"].tolist()
    if args.profiles:
        tokenizer, run_arm = profile_arm(processed, data, users, preset)
    elif args.adapter is None:
        cases = random_cases(data, users, preset.instructions.n_history, preset.rerank_candidates, config.seed)
        tokenizer, model = load_llm(preset.llm)
    else:
        cases = evaluation_cases(args.artifact_dir, data, users, preset, config.seed)
        tokenizer, model = load_finetuned(preset.llm, adapter_dir(args.artifact_dir, args.adapter))
    if not args.profiles:
        reranker = Reranker(tokenizer, model, titles, processed.info["domain"], preset.instructions.max_title_chars)
        generate = reranker.generate_v1 if args.adapter == "v1" else reranker.generate_v2
        method = lambda batch: generate(batch, preset.rerank_max_new_tokens)  # noqa: E731
        method(cases[:2])  # warm-up
        run_arm = lambda path, batch_size: run_method(method, cases, path, batch_size,  # noqa: E731
                                                      sort_by=reranker.text_length)
    tmp = Path(tempfile.mkdtemp(prefix="generation_batch_"))
    arms, first_outputs = [], None
    for position, batch_size in enumerate([*args.batch_sizes, args.batch_sizes[0]]):
        started = time.perf_counter()
        frame = run_arm(tmp / f"arm{position}_bs{batch_size}.jsonl", batch_size)
        seconds = time.perf_counter() - started
        outputs = frame.set_index("user")[RAW]
        first_outputs = outputs if first_outputs is None else first_outputs
        tokens = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in outputs]
        arms.append(
            {
                "batch_size": batch_size,
                "seconds": round(seconds, 2),
                "seconds_per_user": round(seconds / len(users), 4),
                "mean_answer_tokens": round(float(np.mean(tokens)), 1),
                "max_answer_tokens": int(np.max(tokens)),
                "answers_differing_from_first_arm": int((outputs != first_outputs.loc[outputs.index]).sum()),
            }
        )
        print(arms[-1], flush=True)
    baseline = np.mean([arms[0]["seconds_per_user"], arms[-1]["seconds_per_user"]])
    for entry in arms:
        entry["speed_up_vs_first_batch_size"] = round(float(baseline / entry["seconds_per_user"]), 3)
    # the run's OVERRIDES as its notebook 04 recorded them (a sample, a shorter training): what the adapter is
    run_overrides = read_metrics(args.artifact_dir, "04_finetune_palr").get("overrides", "") if args.adapter else None
    what = f"PALR_{args.adapter or 'v2'} generation " + (
        f"(the run's {args.adapter} adapter, its own cases)" if args.adapter else "(base model)"
    )
    what = "profile generation (notebook 02, base model)" if args.profiles else what
    result = {
        "machine": machine(),
        "model": preset.llm.name,
        "method": what,
        "artifact_dir": args.artifact_dir,
        "run_overrides": run_overrides,
        "users": len(users),
        "max_new_tokens": preset.profile_max_new_tokens if args.profiles else preset.rerank_max_new_tokens,
        "preset_batch_size": preset.profile_batch_size if args.profiles else preset.rerank_batch_size,
        "arms": arms,
        "drift_first_vs_last_arm": round(arms[-1]["seconds_per_user"] / arms[0]["seconds_per_user"], 3),
    }
    suffix = "_profiles" if args.profiles else f"_{args.adapter}_adapter" if args.adapter else ""
    name = f"generation_batch_{data_name(processed, args.artifact_dir)}{suffix}_cpu.json"
    out = args.out or Path(__file__).parent / "results" / name  # beside this script, whatever the working folder
    write_json(result, Path(out))
    print("written", out)


if __name__ == "__main__":
    main()
