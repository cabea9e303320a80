"""Supervised fine-tuning with TRL's SFTTrainer and a peft LoRA adapter (4-bit QLoRA on a GPU).

The data is in TRL's prompt/completion format, so the loss covers the
completion (the recommended titles) only. ``PALR_v1`` trains on *Recommend*,
``PALR_v2`` on *Recommend* + *Recommend_Retrieval*. An interrupted run resumes
from its last checkpoint in the output folder; the finished adapter is saved
next to it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from palr_utils.core.hashing import sha256_file, sha256_hex
from palr_utils.core.io import StaleArtifactError, atomic_path, ensure_identity, progress_bars_disabled, write_json
from palr_utils.llm.loading import LLMConfig, format_prompt, quantization_config_4bit, resolve_dtype, resolve_model_path

ADAPTER_DIR = "adapter"
IDENTITY_FILE = "run_identity.json"
HISTORY_FILE = "log_history.json"


@dataclass
class FinetuneResult:
    history: pd.DataFrame  # one row per logged optimiser step: step, loss, learning_rate, ...
    adapter_dir: Path
    quantized_4bit: bool  # whether the trained base model was loaded in 4-bit
    train_seconds: float  # seconds of training, summed over every resumed segment


@dataclass(frozen=True)
class FinetuneConfig:
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    # Adapters on the last N decoder layers only (None: all). Back-propagation then stops at the lowest adapted
    # layer, so the backward pass costs about N / n_layers of a full one: a CPU saving, at some loss of capacity.
    lora_last_layers: int | None = None
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs (the tiny preset trains a handful of steps)
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    max_length: int = 1024  # tokens; instruction prompts are fitted below this
    save_steps: int = 50
    gradient_checkpointing: bool = False  # saves memory on a GPU; costs about 30% time on a CPU
    group_by_length: bool = True  # batches of similar lengths: less padding (prompts run from 150 to 750 tokens)
    max_minutes: float | None = None  # a training-time budget, counted across resumes: stops (and saves) when spent
    # Added to the run's SEED for the training's own randomness only (adapter initialisation, batch order,
    # dropout); the examples stay the run's. A second seed of the same fine-tuning is a benchmark's way to ask
    # whether a result outlives the luck of one training (issue 27, goal 4).
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.seed_offset < 0:
            raise ValueError(f"seed_offset must be 0 or more, not {self.seed_offset}")


def to_sft_dataset(examples: pd.DataFrame, tokenizer, system: str | None = None):
    """TRL prompt/completion rows; prompts are wrapped in the chat template when the model has one."""
    from datasets import Dataset

    prompts = [format_prompt(tokenizer, p, system) for p in examples["prompt"]]
    return Dataset.from_dict({"prompt": prompts, "completion": list(examples["completion"])})


def completion_loss(model, inputs: dict, num_items_in_batch=None):
    """The mean negative log-likelihood of the completion tokens, with the vocabulary projection computed only
    where the loss reads it (the positions whose next token is labelled).

    The same loss as SFTTrainer's, in a fraction of the time on a CPU: TRL's fused LM head scores only the labelled
    positions where Triton runs (a GPU), but every position elsewhere, with entropy and accuracy besides, in tiles of
    torch operations. Most of a PALR_v2 example is prompt, and SmolLM2's projection onto 49,152 tokens of every one of
    its positions is then most of a training step (``benchmarks/sft_loss.py`` measures both).
    """
    import torch
    import torch.nn.functional as F

    targets = inputs["labels"][:, 1:]  # position t predicts token t + 1
    read = targets != -100
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft: the adapted model
    features = {key: inputs[key] for key in ("input_ids", "attention_mask", "position_ids") if key in inputs}
    hidden = base.base_model(**features, use_cache=False).last_hidden_state[:, :-1]  # the decoder, without its head
    logits = base.get_output_embeddings()(hidden[read])
    total = F.cross_entropy(logits.float(), targets[read], reduction="sum")
    count = read.sum() if num_items_in_batch is None else num_items_in_batch
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


def completion_trainer_class():
    """``SFTTrainer`` with :func:`completion_loss` (imported lazily: TRL is heavy); every other part is TRL's."""
    from trl import SFTTrainer

    class CompletionLossTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model is not self.accelerator.unwrap_model(model):  # DDP, FSDP, DeepSpeed: their forward must run
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as SFTTrainer: DDP averages the gradients
            return (loss, None) if return_outputs else loss

    return CompletionLossTrainer


def lora_config(spec: FinetuneConfig, n_layers: int | None = None):
    """peft's LoRA settings; ``n_layers`` (the model's decoder depth) is needed for ``lora_last_layers``."""
    from peft import LoraConfig

    layers = None
    if spec.lora_last_layers is not None:
        if n_layers is None:
            raise ValueError("lora_last_layers needs the model's number of layers")
        layers = list(range(max(0, n_layers - spec.lora_last_layers), n_layers))
    return LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.target_modules),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


TIME_SPENT_FILE = "time_spent.json"  # per checkpoint: training seconds up to it, so a resume keeps its budget
LENGTH_SETTINGS = ("epochs", "max_steps", "max_minutes")  # how long to train: a run may be resumed to train longer


def length_target(spec: FinetuneConfig) -> dict:
    """How long ``spec`` asks to train: its epochs, steps and time budget."""
    return {name: getattr(spec, name) for name in LENGTH_SETTINGS}


def _is_longer(asked: dict, trained: dict) -> bool:
    """Whether ``asked`` trains at least as long as ``trained`` in every respect (steps, or epochs, and minutes)."""
    unlimited = float("inf")
    if (asked["max_steps"] > 0) != (trained["max_steps"] > 0):
        return False  # steps against epochs: not comparable
    length = "max_steps" if asked["max_steps"] > 0 else "epochs"
    return asked[length] >= trained[length] and (asked["max_minutes"] or unlimited) >= (
        trained["max_minutes"] or unlimited
    )


def _same_length_done(trained: dict, asked: dict, history: pd.DataFrame) -> bool:
    """A finished run that trained all its steps or epochs, asked again with the same ones and only another time
    budget: it has nothing left to train (training on would add a step beyond them)."""
    same = trained["max_steps"] == asked["max_steps"] and trained["epochs"] == asked["epochs"]
    if not same or history.empty:
        return False
    if asked["max_steps"] > 0:
        return int(history["step"].max()) >= asked["max_steps"]
    return float(history["epoch"].max()) >= asked["epochs"] - 1e-3


def _training_clock(output_dir: Path, minutes: float | None = None, target: dict | None = None):
    """A transformers callback that keeps the training time and, with ``minutes``, ends training once it is spent.

    The time counts across interruptions: each checkpoint records the training time spent up to it, and a run
    resumed from that checkpoint starts its clock there (a budget restarted at every resume would let a run that
    was stopped and resumed train longer than one that ran through, and record it as the same budget).
    """
    import time

    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    def checkpoint(step: int) -> Path:
        return Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"

    class TrainingClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter() - spent_before(checkpoint(state.global_step) / TIME_SPENT_FILE)

        def seconds(self) -> float:
            """Training seconds so far, those of earlier segments included."""
            return time.perf_counter() - self.started

        def on_step_end(self, args, state, control, **kwargs):
            if minutes is not None and self.seconds() > 60 * minutes:
                control.should_training_stop = True
                control.should_save = True
            return control

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:  # what it takes to finish the run from this checkpoint without training
                spent = {"seconds": round(self.seconds(), 1), "step": state.global_step, "target": target,
                         "quantized_4bit": getattr(self, "quantized", None)}  # fmt: skip
                write_json(spent, checkpoint(state.global_step) / TIME_SPENT_FILE)
            return control

    return TrainingClock()


def _final_checkpoint(folder: Path, target: dict) -> bool:
    """Whether a checkpoint ends a run of this length: its last step, or its time budget spent. Resuming from it
    would train one step more than asked (transformers steps once before it checks), so it is used as it is."""
    try:
        spent = json.loads((folder / TIME_SPENT_FILE).read_text())
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if spent.get("target") != target or not (folder / "adapter_config.json").exists():
        return False
    budget = target["max_minutes"]
    return state["global_step"] >= state["max_steps"] or budget is not None and spent["seconds"] >= 60 * budget


def _adapter_from_checkpoint(folder: Path, adapter: Path, target: dict) -> FinetuneResult:
    """The finished adapter and its log, taken from a run's final checkpoint (see :func:`_final_checkpoint`)."""
    from accelerate import PartialState

    state = json.loads((folder / "trainer_state.json").read_text())
    spent = json.loads((folder / TIME_SPENT_FILE).read_text())
    if PartialState().is_main_process:
        with atomic_path(adapter) as tmp:
            tmp.mkdir()
            for path in folder.glob("adapter_*"):
                shutil.copy2(path, tmp / path.name)
            log = {"history": [row for row in state["log_history"] if "loss" in row], "target": target,
                   "quantized_4bit": bool(spent["quantized_4bit"]), "train_seconds": spent["seconds"]}  # fmt: skip
            write_json(log, tmp / HISTORY_FILE)
    PartialState().wait_for_everyone()
    return _read_result(adapter / HISTORY_FILE, adapter)


def spent_before(record: Path) -> float:
    """Training seconds recorded in a checkpoint's ``time_spent.json``; 0 where there is none (a fresh run)."""
    try:
        return float(json.loads(record.read_text())["seconds"])
    except FileNotFoundError:
        return 0.0
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{record} is damaged ({error}); delete it to resume with a fresh time budget, or delete its checkpoint "
            "folder to resume from the one before."
        ) from error


def _checkpointing_setting(config_class, enabled: bool) -> dict:
    """Activation (gradient) checkpointing on or off, under the name this transformers version reads: 5.x renamed
    ``gradient_checkpointing`` to ``activation_checkpointing`` and warns on the old name."""
    names = {field.name for field in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def _model_init_kwargs(llm: LLMConfig, dtype) -> dict:
    """How SFTTrainer loads the base model: in 4-bit, each process puts its copy on its own GPU."""
    import torch

    if not llm.load_in_4bit:
        return {"dtype": dtype}
    kwargs = {"dtype": torch.bfloat16}
    if torch.cuda.is_available():
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}  # one GPU per process under accelerate
    return kwargs


def _read_result(history_path: Path, adapter: Path) -> FinetuneResult:
    state = json.loads(history_path.read_text())
    missing = [key for key in ("history", "quantized_4bit", "train_seconds", "target") if key not in state]
    if missing:
        raise StaleArtifactError(
            f"{history_path} has no {', '.join(missing)}: an older version of palr_utils trained {adapter}. Delete "
            f"{adapter.parent} and rerun notebook 04 (or python -m palr_utils.finetune.cli) to train it afresh."
        )
    return FinetuneResult(pd.DataFrame(state["history"]), adapter, bool(state["quantized_4bit"]),
                          float(state["train_seconds"]))  # fmt: skip


def _finished_log(adapter: Path) -> Path | None:
    """The training log of a finished run, inside the adapter folder (written with it in one rename); None when
    the run has not finished. An adapter folder without its weights or its log was not written by this version."""
    if not adapter.exists():
        return None
    if not (adapter / "adapter_config.json").exists():
        raise StaleArtifactError(f"{adapter} holds no adapter weights. Delete it to finish training from the last "
                                 "checkpoint.")  # fmt: skip
    if not (adapter / HISTORY_FILE).exists():
        raise StaleArtifactError(f"{adapter} has no {HISTORY_FILE} (an older version wrote it). Delete {adapter} to "
                                 "finish training from the last checkpoint.")  # fmt: skip
    return adapter / HISTORY_FILE


def _has_4bit_layers(model) -> bool:
    """True when bitsandbytes replaced the model's linear layers by 4-bit ones."""
    from bitsandbytes.nn import Linear4bit

    return any(isinstance(module, Linear4bit) for module in model.modules())


def dataset_fingerprint(dataset) -> str:
    """A hash of every prompt and completion: the same examples in the same order give the same hash."""
    pairs = zip(dataset["prompt"], dataset["completion"], strict=True)
    return sha256_hex(f"{len(prompt)}:{prompt}{len(answer)}:{answer}" for prompt, answer in pairs)


def adapter_fingerprint(adapter_dir: str | Path) -> str:
    """A hash of the adapter's weights (and of its item tokens, where it has them): re-ranking caches record which
    adapter wrote them."""
    weights = sorted(Path(adapter_dir).glob("adapter_model.*"))
    if not weights:
        raise FileNotFoundError(f"no adapter weights in {adapter_dir}; run notebook 04 first")
    extras = sorted(p for p in Path(adapter_dir).glob("adapter_*.safetensors") if p != weights[0])
    if not extras:  # the hash of an adapter without extras is its weights' alone, as it always was
        return sha256_file(weights[0])
    return sha256_hex([sha256_file(weights[0]), *map(sha256_file, extras)])


def adapter_parameter_count(adapter_dir: str | Path) -> int:
    """How many numbers a saved LoRA adapter trained (read from its weights file, no model needed)."""
    import math

    from safetensors import safe_open

    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


def training_seed(spec: FinetuneConfig, seed: int) -> int:
    """The seed of the training's own randomness: the run's seed plus ``spec.seed_offset``."""
    return seed + spec.seed_offset


def run_identity(llm: LLMConfig, spec: FinetuneConfig, dataset, seed: int, objective: dict | None = None) -> dict:
    """What a checkpoint must share with the run that resumes it.

    How long to train (epochs, steps, time budget) and how often to save are left out: a run may be
    resumed to train longer. ``objective`` names a loss other than the language-modelling one.
    """
    resumable = {"epochs", "max_steps", "max_minutes", "save_steps"}
    settings = {k: v for k, v in dataclasses.asdict(spec).items() if k not in resumable}
    if not settings["seed_offset"]:  # absent when unused: adapters trained before it existed keep their identity
        del settings["seed_offset"]
    identity = {"model": llm.name, "load_in_4bit": llm.load_in_4bit, "finetune": settings, "seed": seed,
                "n_examples": len(dataset), "examples_sha256": dataset_fingerprint(dataset)}  # fmt: skip
    if objective:  # absent for the usual loss: the identities of language-modelling runs do not name one
        identity["objective"] = objective
    return identity


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder that the trainer finished writing, or None.

    transformers writes a checkpoint's ``trainer_state.json`` last, so a folder without a readable one was
    cut off by a kill mid-save: it is skipped (with a warning) and training resumes from the one before.
    """
    complete = []
    for folder in output_dir.glob("checkpoint-*"):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            complete.append(folder)
        except (OSError, ValueError):
            warnings.warn(f"{folder} is incomplete (a run stopped while saving it); resuming from an earlier one.",
                          stacklevel=2)  # fmt: skip
    complete.sort(key=lambda p: int(p.name.split("-")[-1]))
    return str(complete[-1]) if complete else None


def _finished_result(output_dir: Path, adapter: Path, target: dict, resume_from: str | None):
    """The result of a run that has nothing left to train, or None; an adapter that is to train on is removed."""
    if (finished := _finished_log(adapter)) is not None:
        result = _read_result(finished, adapter)
        trained = json.loads(finished.read_text())["target"]
        if trained == target or _same_length_done(trained, target, result.history):
            return result
        if not _is_longer(target, trained):
            raise StaleArtifactError(
                f"{adapter} was trained for {trained}; this run asks for {target}, which is not longer in every "
                f"respect, so it cannot be had by training on. Delete {output_dir} to train afresh, or use another "
                "ARTIFACT_DIR."
            )
        warnings.warn(f"{adapter} was trained for {trained}; this run asks for {target}: training on from the last "
                      "checkpoint.", stacklevel=3)  # fmt: skip
        shutil.rmtree(adapter)
    if resume_from is not None and _final_checkpoint(Path(resume_from), target):
        return _adapter_from_checkpoint(Path(resume_from), adapter, target)
    return None


def _sft_config(llm: LLMConfig, spec: FinetuneConfig, output_dir: Path, seed: int):
    """TRL's training arguments for ``spec``: a log line and a loss per step, checkpoints to resume from."""
    import torch
    from trl import SFTConfig

    dtype = resolve_dtype(llm)
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        learning_rate=spec.learning_rate,
        max_length=spec.max_length,
        logging_steps=1,
        save_steps=spec.save_steps,
        save_total_limit=2,
        **_checkpointing_setting(SFTConfig, spec.gradient_checkpointing),
        train_sampling_strategy="group_by_length" if spec.group_by_length else "random",
        bf16=dtype == torch.bfloat16 or llm.load_in_4bit,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=True if progress_bars_disabled() else None,
        seed=seed,
        model_init_kwargs=_model_init_kwargs(llm, dtype),
    )


def _save_adapter(trainer, adapter: Path, quantized: bool, seconds: float, target: dict) -> None:
    """The trained adapter and its log, landing together in one rename: a kill leaves either both or neither."""
    if trainer.is_world_process_zero():  # under accelerate launch, one process writes
        history = pd.DataFrame([row for row in trainer.state.log_history if "loss" in row])
        with atomic_path(adapter) as tmp:
            trainer.model.save_pretrained(tmp)
            if hasattr(trainer, "save_extras"):  # e.g. PALR-rank's item-token projector, beside the LoRA weights
                trainer.save_extras(tmp)
            log = {"history": history.to_dict(orient="records"), "quantized_4bit": quantized,
                   "train_seconds": round(seconds, 1), "target": target}  # fmt: skip
            write_json(log, tmp / HISTORY_FILE)
    trainer.accelerator.wait_for_everyone()


def finetune(
    llm: LLMConfig, tokenizer, dataset, output_dir: str | Path, spec: FinetuneConfig, seed: int = 42,
    trainer_class=None, trainer_kwargs: dict | None = None,
) -> FinetuneResult:  # fmt: skip
    """Train a LoRA adapter on ``dataset``; returns its logged history and where the adapter is.

    The model is passed to SFTTrainer by path or id, so that with ``llm.load_in_4bit``
    SFTTrainer itself loads it in 4-bit NF4 (QLoRA). An existing finished adapter is reused, and an
    interrupted run resumed, only when model, settings and examples are the ones they were made with
    (otherwise :class:`~palr_utils.core.io.StaleArtifactError` says which differ). ``trainer_class`` (a subclass
    of SFTTrainer with another loss, e.g. ``palr_rank.trainer.listwise_trainer_class()``) and its extra
    ``trainer_kwargs`` (JSON values, or objects with an ``identity()`` that is one) become part of that identity.
    """
    from transformers import AutoConfig

    output_dir = Path(output_dir)
    adapter = output_dir / ADAPTER_DIR
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer_kwargs = trainer_kwargs or {}
    # a value that is no JSON (an item table) names itself by its identity(): its contents, not its address
    named = {k: v.identity() if hasattr(v, "identity") else v for k, v in trainer_kwargs.items()}
    objective = {"trainer": trainer_class.__name__, **named} if trainer_class else None
    ensure_identity(output_dir / IDENTITY_FILE, run_identity(llm, spec, dataset, seed, objective), output_dir)
    target = length_target(spec)
    resume_from = last_complete_checkpoint(output_dir)
    if (result := _finished_result(output_dir, adapter, target, resume_from)) is not None:
        return result

    model_path = resolve_model_path(llm.name)
    clock = _training_clock(output_dir, spec.max_minutes, target)
    # the model's depth is needed only to place adapters on its last layers
    n_layers = AutoConfig.from_pretrained(model_path).num_hidden_layers if spec.lora_last_layers else None
    # the usual loss is the same as SFTTrainer's, computed where it is read, so it does not enter the identity
    trainer = (trainer_class or completion_trainer_class())(
        **trainer_kwargs,
        model=model_path,
        args=_sft_config(llm, spec, output_dir, training_seed(spec, seed)),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(spec, n_layers),
        quantization_config=quantization_config_4bit() if llm.load_in_4bit else None,
        callbacks=[clock],
    )
    if progress_bars_disabled():  # executed notebooks: no line per step (the log history keeps every loss)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    quantized = clock.quantized = _has_4bit_layers(trainer.model)
    trainer.train(resume_from_checkpoint=resume_from)
    _save_adapter(trainer, adapter, quantized, clock.seconds(), target)
    return _read_result(adapter / HISTORY_FILE, adapter)
