"""Benchmark: what one prompt's prefill and one decoding step of the preset's LLM cost, by dtype and batch size.

Generation (notebook 02's profiles, notebook 05's PALR_v1 and PALR_v2) is a prefill of the prompts, then one
decoding step per answer token for the whole batch. The two are limited by different things on a CPU: a prefill
multiplies thousands of tokens by each weight matrix (compute: bf16 pays where the CPU has bf16 units), a decoding
step multiplies a handful of tokens by every weight (reading the weights, and the fixed cost of thirty layers of
small matmuls: dtype and batch size matter in ways only a measurement tells). This script times both, for each
dtype the CPU can run fast (float32 always, bf16 where it has AVX512-BF16 or AMX) and each batch size, on prompts
of a typical length (token values do not change the time), so that a choice of dtype or batch size for the
generating stages rests on this machine's numbers:

    .venv/bin/python benchmarks/decode_step.py                       # -> results/decode_step_cpu.json
    .venv/bin/python benchmarks/decode_step.py --batch-sizes 8 32 --prompt-tokens 450 --out /tmp/d.json

Each timing is the median of ``--repeats``; the machine's drift shows as the first arm repeated at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.devices import cpu_supports_bf16
from palr_utils.core.io import write_json
from palr_utils.llm.loading import LLMConfig, load_llm


@torch.no_grad()
def time_arm(model, batch_size: int, prompt_tokens: int, steps: int, repeats: int) -> dict:
    """Median seconds of a prefill of ``batch_size`` prompts and of one decoding step after it (greedy, cached)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    prefill, decode = [], []
    model(input_ids=torch.randint(100, vocab - 100, (batch_size, 16), generator=generator))  # warm-up: first-call costs
    for _ in range(repeats):
        ids = torch.randint(100, vocab - 100, (batch_size, prompt_tokens), generator=generator)
        mask = torch.ones_like(ids)
        started = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        prefill.append(time.perf_counter() - started)
        cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            started = time.perf_counter()
            out = model(input_ids=token, attention_mask=mask, cache=cache, use_cache=True)
            decode.append(time.perf_counter() - started)
            cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
    prefill_s, decode_s = statistics.median(prefill), statistics.median(decode)
    return {"batch_size": batch_size, "prefill_seconds": round(prefill_s, 4),
            "prefill_seconds_per_prompt": round(prefill_s / batch_size, 4),
            "decode_step_seconds": round(decode_s, 4),
            "decode_seconds_per_prompt_token": round(decode_s / batch_size, 5)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="the preset's LLM by default")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--prompt-tokens", type=int, default=450, help="about PALR_v2's prompt on MovieLens-1M")
    parser.add_argument("--steps", type=int, default=12, help="decoding steps timed after each prefill")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "decode_step_cpu.json"))
    args = parser.parse_args(argv)

    dtypes = ["float32", "bfloat16"] if cpu_supports_bf16() else ["float32"]
    arms = []
    for dtype in dtypes:
        _, model = load_llm(LLMConfig(args.model, dtype=dtype))
        sizes = [*args.batch_sizes, args.batch_sizes[0]] if dtype == dtypes[0] else args.batch_sizes
        for batch_size in sizes:
            arms.append({"dtype": dtype, **time_arm(model, batch_size, args.prompt_tokens, args.steps, args.repeats)})
            print(arms[-1], flush=True)
        del model
    result = {"machine": machine(), "model": args.model, "prompt_tokens": args.prompt_tokens,
              "bf16_available": cpu_supports_bf16(), "arms": arms,
              "drift_first_vs_last_arm": round(arms[len(args.batch_sizes)]["decode_step_seconds"]
                                               / arms[0]["decode_step_seconds"], 3)}  # fmt: skip
    write_json(result, args.out)
    print("written", args.out)


if __name__ == "__main__":
    main()
