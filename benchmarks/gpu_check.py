"""The GPU check: what the `paper` preset needs from a CUDA machine, measured in a few minutes.

    bash benchmarks/gpu_check.sh                                   # on a lent GPU machine (see the script)
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny   # the dry run the tests do, on the CPU

Three stages, each timed, into one JSON (default benchmarks/results/gpu_check_<device>.json):

1. **SASRec** with the `cpu` preset's configuration and schedule, trained on MovieLens-1M (``--data-dir``, a
   custom-format folder) on the device: seconds per epoch, the whole schedule's time, test HR@10 / NDCG@10;
2. **QLoRA**: a few SFTTrainer steps of a small LLaMA-architecture model loaded in 4-bit NF4 by bitsandbytes
   (random weights: the check is the 4-bit path on this device, not what the model learns);
3. **inference**: greedy generation and PALR-rank's one-pass scoring (palr_utils.palr_rank) with that model.

``--tiny`` swaps MovieLens-1M for the seeded synthetic data and shortens everything, so the whole check runs on a
CPU in a minute: the test suite runs it that way, so the script cannot rot before a GPU is lent.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from palr_utils.core.devices import resolve_device
from palr_utils.core.io import write_json
from palr_utils.data import describe_dataset, load_raw_dataset, preprocess
from palr_utils.finetune.sft import FinetuneConfig, finetune, to_sft_dataset
from palr_utils.llm.loading import LLMConfig, format_prompt, generate, load_llm
from palr_utils.llm.prompts import rank_prompt
from palr_utils.palr_rank.scoring import rank_scores
from palr_utils.presets import resolve_config
from palr_utils.retrieval import SASRec, SequenceData, train


def small_llama(folder: Path, tokenizer) -> Path:
    """A randomly initialised LLaMA with the tokenizer's vocabulary, saved as a Hugging Face folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def check_sasrec(args, device: torch.device) -> dict:
    preset_name = "tiny" if args.tiny else "cpu"
    dataset, data_dir = ("synthetic", args.work_dir) if args.tiny else ("custom", args.data_dir)
    config = resolve_config(preset_name, dataset, data_dir, args.work_dir)
    processed = preprocess(load_raw_dataset(config), config.preset.min_interactions)
    processed.info = describe_dataset(config, processed)
    preset = config.preset.for_data(processed.info)
    data = SequenceData.from_interactions(processed.interactions, processed.n_users, processed.n_items)
    training = dataclasses.replace(preset.sasrec_training, device=str(device), max_minutes=args.sasrec_minutes)
    if args.tiny:
        training = dataclasses.replace(training, epochs=2, eval_every=1)
    model = SASRec(data.n_items, preset.sasrec)
    started = time.perf_counter()
    history = train(model, data, training, progress=False)
    seconds = time.perf_counter() - started
    test = model.evaluate("test")
    return {
        "data": f"{dataset}:{data_dir}", "n_users": data.n_users, "n_items": data.n_items,
        "config": dataclasses.asdict(preset.sasrec), "epochs_run": int(history["epoch"].max()),
        "epochs_planned": training.epochs, "best_epoch": model.best_epoch, "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, int(history["epoch"].max())), 2),
        "parameters_on": str(model.device), "test_hr@10": test["hr@10"], "test_ndcg@10": test["ndcg@10"],
    }  # fmt: skip


def check_qlora_and_inference(args, device: torch.device) -> tuple[dict, dict]:
    from transformers import AutoTokenizer

    from palr_utils.llm.loading import smollm2_folder

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder()) if args.tiny else AutoTokenizer.from_pretrained(
        args.tokenizer
    )  # fmt: skip
    folder = small_llama(Path(args.work_dir) / "small-llama", tokenizer)
    rows = pd.DataFrame({
        "prompt": [f"The user watched Movie {i} (199{i % 10}). Recommend the next movie." for i in range(32)],
        "completion": [f"Movie {i + 1} (199{(i + 1) % 10})" for i in range(32)],
    })  # fmt: skip
    steps = 3 if args.tiny else 10
    spec = FinetuneConfig(max_steps=steps, batch_size=8, max_length=256, learning_rate=1e-3, save_steps=1000)
    started = time.perf_counter()
    result = finetune(LLMConfig(str(folder), load_in_4bit=True), tokenizer, to_sft_dataset(rows, tokenizer),
                      Path(args.work_dir) / "qlora", spec)  # fmt: skip
    qlora = {
        "steps": steps, "seconds": round(time.perf_counter() - started, 1), "quantized_4bit": result.quantized_4bit,
        "loss_first": float(result.history["loss"].iloc[0]), "loss_last": float(result.history["loss"].iloc[-1]),
    }  # fmt: skip

    tokenizer, model = load_llm(LLMConfig(str(folder), dtype="bfloat16" if device.type == "cuda" else "float32"))
    model.to(device)
    prompts = [format_prompt(tokenizer, rank_prompt([f"Movie {i}", f"Movie {i + 1}"])) for i in range(8)]
    started = time.perf_counter()
    answers = generate(tokenizer, model, prompts, max_new_tokens=16)
    generation_seconds = time.perf_counter() - started
    candidates = [[f"Movie {j} (199{j % 10})" for j in range(20)]] * len(prompts)
    started = time.perf_counter()
    scores = rank_scores(tokenizer, model, prompts, candidates)
    inference = {
        "device": str(model.device), "prompts": len(prompts), "generation_seconds": round(generation_seconds, 2),
        "new_tokens": 16, "scoring_seconds": round(time.perf_counter() - started, 2),
        "scores_finite": bool(all(torch.isfinite(torch.as_tensor(s)).all() for s in scores)),
        "answers_generated": sum(bool(a) for a in answers),
    }  # fmt: skip
    return qlora, inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--tiny", action="store_true", help="synthetic data and a few steps (the CPU dry run)")
    parser.add_argument("--data-dir", default="data/gpu/ml-1m", help="MovieLens-1M in the custom format")
    parser.add_argument("--tokenizer", default="data/gpu/tokenizer", help="a tokenizer folder (SmolLM2's)")
    parser.add_argument("--sasrec-minutes", type=float, default=5.0, help="SASRec's budget within the check")
    parser.add_argument("--work-dir", default="", help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="gpu_check_")
    device = resolve_device(args.device)
    out = args.out or str(Path(__file__).parent / "results" / f"gpu_check_{device.type}.json")

    report: dict = {
        "device": str(device), "torch": torch.__version__, "machine": platform.machine(), "tiny": args.tiny,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }  # fmt: skip
    started = time.perf_counter()
    for name, stage in (("sasrec", check_sasrec), ("qlora_and_inference", check_qlora_and_inference)):
        stage_started = time.perf_counter()
        try:
            result = stage(args, device)
            if name == "qlora_and_inference":
                report["qlora"], report["inference"] = result
            else:
                report[name] = result
        except Exception as error:  # noqa: BLE001 - the check records every stage's failure and goes on
            report[f"{name}_error"] = f"{type(error).__name__}: {str(error)[:500]}"
        report[f"{name}_stage_seconds"] = round(time.perf_counter() - stage_started, 1)
        write_json(report, out)  # after every stage: a check cut short by its time limit keeps what it measured
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(report, out)
    print(report)


if __name__ == "__main__":
    main()
