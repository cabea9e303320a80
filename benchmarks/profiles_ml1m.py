"""Benchmark: natural-language profiles for 1,000 MovieLens-1M users with SmolLM2 on the CPU.

    .venv/bin/python benchmarks/profiles_ml1m.py [--data-dir ../shared/data/ml-1m] [--users 1000]

Uses the `cpu` preset's settings (prompt, batch size, tokens) on a seeded
sample of users and records the wall time, seconds per profile, the share of
empty profiles and a few examples in benchmarks/results/profiles_ml1m_cpu.json.
The cache is cleared first, so every profile is generated in the run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import load_benchmark_data, machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.core.sampling import evaluation_users
from palr_utils.llm.loading import load_llm
from palr_utils.profiles import build_profile_prompts, generate_profiles, llm_profile_writer, user_descriptions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data/ml-1m")
    parser.add_argument("--dataset", default="custom")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "profiles_ml1m_cpu.json"))
    args = parser.parse_args()

    config, processed, data = load_benchmark_data("cpu", args.dataset, args.data_dir, "")
    profile = config.preset
    users = evaluation_users(data.n_users, args.users, config.seed)
    prompts = build_profile_prompts(
        [data.train[u] for u in users], processed.items, users, user_descriptions(processed.users), "movie",
        profile.profile_history_items,
    )  # fmt: skip
    started = time.perf_counter()
    tokenizer, model = load_llm(profile.llm)
    load_seconds = time.perf_counter() - started
    writer = llm_profile_writer(tokenizer, model, profile.profile_max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        profiles = generate_profiles(users, prompts, writer, Path(tmp) / "profiles.jsonl", profile.profile_batch_size)
        wall = time.perf_counter() - started
    empty = profiles["keywords"].map(len) == 0
    result = {
        "model": profile.llm.name,
        "dtype": str(model.dtype),
        "n_users": len(users),
        "batch_size": profile.profile_batch_size,
        "max_new_tokens": profile.profile_max_new_tokens,
        "history_items_in_prompt": profile.profile_history_items,
        "model_load_seconds": round(load_seconds, 2),
        "generation_wall_seconds": round(wall, 1),
        "seconds_per_profile": round(wall / len(users), 3),
        "empty_profile_rate": float(empty.mean()),
        "mean_keywords_per_profile": float(profiles["keywords"].map(len).mean()),
        "examples": [
            {"user": int(r["user"]), "keywords": r["keywords"], "raw_output": r["raw_output"]}
            for _, r in profiles.head(5).iterrows()
        ],
        "machine": machine(),
    }
    write_json(result, args.out)
    print({k: v for k, v in result.items() if k != "examples"})


if __name__ == "__main__":
    main()
