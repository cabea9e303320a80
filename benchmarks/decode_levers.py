"""Benchmark: issue 30's decoding levers for the generating stages, old and new side by side in one run.

Generation (notebook 02's profiles, notebook 05's PALR_v1 and PALR_v2) is today ``model.generate`` with the
default cache: each decoding step appends the new keys and values to every layer's cache (a copy of the whole
cache, ``torch.cat``) and runs the eager model. This script times the alternatives transformers offers for the
same greedy answers, on the same prompts, and checks that the answers are the same:

* ``dynamic``: what the code does today, in the dtype ``load_llm`` picks (bf16 where the CPU has bf16 units, else
  float32; the first arm, repeated last to show the machine's drift);
* ``static``: ``cache_implementation="static"``, a cache allocated once for the longest sequence, written in
  place (no copy per step, but attention reads the whole allocated length);
* ``compile``: the model's forward compiled by ``torch.compile`` (dynamic shapes), the cache as today; its
  compilation is timed apart from the generation;
* ``continuous``: ``model.generate_batch``, continuous batching (a finished answer's row is given to the next
  prompt at once, over a paged cache), the whole set of prompts at once;
* ``float32`` and ``bf16_prefill`` (only where the CPU has bf16 units, i.e. where today's dtype is bf16): the
  model in float32, and the same float32 weights reading the prompts under bf16 autocast and decoding in float32.
  A prefill is compute-bound and gains from bf16 units; a decoding step multiplies a handful of tokens by every
  weight, where bf16 was seen no faster than float32 (``decode_step.py``, docs/results.md).

Every answer runs to ``--new-tokens`` (``min_new_tokens``), so the arms decode the same number of tokens and the
comparison is of the decoding machinery only; the prompts are random tokens of the length given (token values do
not change the time)::

    .venv/bin/python benchmarks/decode_levers.py                  # -> results/decode_levers_cpu.json
    .venv/bin/python benchmarks/decode_levers.py --arms dynamic static --prompts 16 --out /tmp/d.json
    # on a CPU with bf16 units (AVX512-BF16 or AMX): today's bf16 beside float32 and the split
    .venv/bin/python benchmarks/decode_levers.py --arms dynamic float32 bf16_prefill \
        --out benchmarks/results/decode_levers_bf16_cpu.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import machine  # benchmarks/common.py (scripts run from this folder)

from palr_utils.core.io import write_json
from palr_utils.llm.loading import LLMConfig, load_llm

ARMS = ("dynamic", "static", "compile", "continuous", "float32", "bf16_prefill")
BF16_ARMS = ("float32", "bf16_prefill")  # arms that differ from today's only where today's dtype is bf16


@torch.no_grad()
def batched(model, prompts: torch.Tensor, batch_size: int, new_tokens: int, **options) -> list[list[int]]:
    """Greedy answers (token ids) of ``model.generate`` in batches, every answer ``new_tokens`` long."""
    answers = []
    for start in range(0, len(prompts), batch_size):
        ids = prompts[start : start + batch_size]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, **options)  # fmt: skip
        answers += out[:, ids.shape[1] :].tolist()
    return answers


@torch.no_grad()
def decoding_step_profile(model, prompts: torch.Tensor, steps: int = 10, top: int = 6) -> dict[str, float]:
    """Where today's decoding steps spend their time: each of the ``top`` operators' share of the CPU time of
    ``steps`` cached steps after a prefill of ``prompts`` (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    out = model(input_ids=prompts, attention_mask=torch.ones_like(prompts), use_cache=True, logits_to_keep=1)
    cache, token, mask = out.cache, out.logits[:, -1].argmax(-1, keepdim=True), torch.ones_like(prompts)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            out = model(input_ids=token, attention_mask=mask, cache=cache, use_cache=True)
            cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    ranked = sorted(events, key=lambda event: -event.self_cpu_time_total)[:top]
    return {event.key: round(event.self_cpu_time_total / total, 3) for event in ranked}


@torch.no_grad()
def bf16_prefill(model, prompts: torch.Tensor, batch_size: int, new_tokens: int) -> list[list[int]]:
    """Greedy answers of a float32 ``model`` whose prompts are read under bf16 autocast: the prompt but its last
    token fills the cache in bf16, the cache is cast to float32, and ``generate`` goes on from it in float32 (it
    reads the last prompt token itself, so its first step and every later one run in float32)."""
    answers = []
    for start in range(0, len(prompts), batch_size):
        ids = prompts[start : start + batch_size]
        mask = torch.ones_like(ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cache = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True,
                          logits_to_keep=1).cache  # fmt: skip
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys.float(), layer.values.float()
        out = model.generate(input_ids=ids, attention_mask=mask, cache=cache, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False)  # fmt: skip
        answers += out[:, ids.shape[1] :].tolist()
    return answers


@torch.no_grad()
def continuous(model, prompts: torch.Tensor, new_tokens: int) -> list[list[int]]:
    """The same answers by continuous batching, in the prompts' order."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              eos_token_id=model.generation_config.eos_token_id,
                              pad_token_id=model.generation_config.pad_token_id)  # fmt: skip
    outputs = model.generate_batch(prompts.tolist(), generation_config=config, progress_bar=False)
    by_prompt = sorted(outputs.values(), key=lambda out: int(out.request_id.rsplit("_", 1)[-1]))
    return [list(out.generated_tokens) for out in by_prompt]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="the preset's LLM by default")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=None,
                        help="default: every arm (the float32 ones only where today's dtype is bf16)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=300, help="about a profile or PALR_v1 prompt")
    parser.add_argument("--new-tokens", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8, help="the preset's rerank_batch_size")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "decode_levers_cpu.json"))
    args = parser.parse_args(argv)

    _, model = load_llm(LLMConfig(args.model))  # today's dtype
    today_dtype = str(model.dtype).removeprefix("torch.")
    if args.arms is None:
        args.arms = [arm for arm in ARMS if today_dtype == "bfloat16" or arm not in BF16_ARMS]
    float32_model = model if today_dtype == "float32" else None
    if any(arm in BF16_ARMS for arm in args.arms) and float32_model is None:
        float32_model = load_llm(LLMConfig(args.model, dtype="float32"))[1]
    vocab = model.get_input_embeddings().weight.shape[0]
    prompts = torch.randint(100, vocab - 100, (args.prompts, args.prompt_tokens),
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    batched(model, prompts[:2], 2, 2)  # warm-up: first-call costs, for every model and path timed below
    if "float32" in args.arms and float32_model is not model:
        batched(float32_model, prompts[:2], 2, 2)
    if "bf16_prefill" in args.arms:
        bf16_prefill(float32_model, prompts[:2], 2, 2)
    arms, reference = [], None
    eager = model.forward
    for name in [*args.arms, args.arms[0]]:
        setup = 0.0
        if name == "compile":
            model.forward = torch.compile(model.forward, dynamic=True)
            started = time.perf_counter()
            batched(model, prompts[:2], 2, 2)  # the compilation, timed apart
            setup = time.perf_counter() - started
        started = time.perf_counter()
        if name == "continuous":
            answers = continuous(model, prompts, args.new_tokens)
        elif name == "float32":
            answers = batched(float32_model, prompts, args.batch_size, args.new_tokens)
        elif name == "bf16_prefill":
            answers = bf16_prefill(float32_model, prompts, args.batch_size, args.new_tokens)
        else:
            answers = batched(model, prompts, args.batch_size, args.new_tokens,
                              **({"cache_implementation": "static"} if name == "static" else {}))  # fmt: skip
        seconds = time.perf_counter() - started
        if name == "compile":
            model.forward = eager  # the eager model again for later arms
        reference = reference or answers
        arms.append({"arm": name, "seconds": round(seconds, 2), "setup_seconds": round(setup, 1),
                     "seconds_per_prompt": round(seconds / len(prompts), 4),
                     "same_answers": sum(a == b for a, b in zip(answers, reference, strict=True))})  # fmt: skip
        print(arms[-1], flush=True)
    base = (arms[0]["seconds"] + arms[-1]["seconds"]) / 2
    for entry in arms:
        entry["speed-up"] = round(base / entry["seconds"], 2)  # against the mean of the two `dynamic` arms
    # where today's decoding step spends its time, on one batch of the same prompts
    profile_shares = decoding_step_profile(model, prompts[: args.batch_size])
    print("today's decoding step, share of CPU time:", profile_shares)
    result = {"machine": machine(), "model": args.model, "dtype": today_dtype, "prompts": args.prompts,
              "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "batch_size": args.batch_size,
              "arms": arms, "decoding_step_cpu_time_shares": profile_shares,
              "drift_first_vs_last_arm": round(arms[-1]["seconds"] / arms[0]["seconds"], 3)}  # fmt: skip
    write_json(result, args.out)
    print("written", args.out)


if __name__ == "__main__":
    main()
