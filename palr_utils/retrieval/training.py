"""One training loop for every neural retriever: epochs, validation, early stopping, checkpoints.

Models are selected on validation NDCG@10 only; the test split is never looked
at here. The best weights are kept as safetensors; the last state (weights,
optimizer, history) lets an interrupted run resume where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from palr_utils.core.constants import VALID
from palr_utils.core.devices import bf16_autocast, cpu_supports_bf16, resolve_device
from palr_utils.core.io import StaleArtifactError, atomic_path, describe_error, progress_bars_disabled, write_json
from palr_utils.retrieval.base import Retriever
from palr_utils.retrieval.sequences import SequenceData

# The files of a checkpoint folder: the best validation weights (what a trained retriever is), the last weights.
BEST_WEIGHTS = "best.safetensors"
LAST_WEIGHTS = "last.safetensors"


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 1  # epochs between validation runs
    patience: int = 10  # validation runs without improvement before stopping
    max_minutes: float | None = None  # a wall-clock budget; the best checkpoint so far is kept
    lr_decay_factor: float | None = None  # multiply the learning rate by this when validation stalls...
    lr_decay_patience: int = 1  # ...for this many validation runs (torch's ReduceLROnPlateau)
    # "cosine": rise linearly over ``warmup_epochs``, then follow a half cosine down to zero at the last of
    # ``epochs``, updated every step (a schedule fixed in advance, unlike the reactive decay above)
    lr_schedule: str | None = None
    warmup_epochs: float = 0.0
    # With the cosine and ``max_minutes``: after the first validation, plan as many of ``epochs`` as the budget
    # holds at the pace measured so far (kept in the checkpoint), so that on a slower machine the schedule still
    # reaches zero instead of being cut off while the rate is high
    fit_epochs_to_budget: bool = False
    # bf16 matmuls on CPU: True, False, or "auto" (on where the CPU has bf16 units, e.g. AVX512-BF16 or AMX)
    bf16_autocast: bool | str = False
    seed: int = 42  # the notebooks' SEED replaces it (RunPreset.with_seed)
    # "auto": the GPU when there is one (bf16 autocast on it), else the CPU; or "cpu", "cuda", "cuda:1"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.lr_schedule not in (None, "cosine"):
            raise ValueError(f"lr_schedule must be None or 'cosine', not {self.lr_schedule!r}")
        if self.lr_schedule and self.lr_decay_factor:
            raise ValueError("choose one learning-rate policy: lr_schedule='cosine' or lr_decay_factor, not both")
        if self.fit_epochs_to_budget and not (self.lr_schedule and self.max_minutes):
            raise ValueError("fit_epochs_to_budget fits a schedule to a budget: it needs lr_schedule='cosine' and "
                             "max_minutes")  # fmt: skip

    def uses_bf16(self, device: torch.device | None = None) -> bool:
        """Whether training runs under bf16 autocast ("auto": on a GPU always, on a CPU where it has bf16 units)."""
        if self.bf16_autocast != "auto":
            return bool(self.bf16_autocast)
        return device is not None and device.type == "cuda" or cpu_supports_bf16()


class TorchRetriever(Retriever, nn.Module):
    """A retriever trained by :func:`train`: subclasses yield batches and compute a loss."""

    def __init__(self) -> None:
        nn.Module.__init__(self)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (batches are built on the CPU and moved there)."""
        return next(self.parameters()).device

    def batches(self, data: SequenceData, rng: np.random.Generator, batch_size: int) -> Iterator:
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """What must match for a checkpoint to be reused (name, sizes, hyper-parameters)."""
        raise NotImplementedError

    def fit(self, data: SequenceData, config: TrainingConfig | None = None, checkpoint_dir=None):
        train(self, data, config or TrainingConfig(), checkpoint_dir)
        return self


def to_device(batch, device: torch.device):
    """A batch (a tensor, or a tuple/list of them) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(part, device) for part in batch)
    return batch


def training_step(model: TorchRetriever, optimizer: torch.optim.Optimizer, batch, bf16: bool) -> float:
    """One optimiser step on one batch, on the model's device (bf16 autocast when asked); returns its loss."""
    optimizer.zero_grad()
    device = model.device
    with bf16_autocast(device, bf16):
        loss = model.loss(to_device(batch, device))
    loss.backward()
    optimizer.step()
    return loss.item()


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights: which trained weights a continued training started from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _identity(model: TorchRetriever, data: SequenceData, config: TrainingConfig, warm_start: bool = False) -> dict:
    # how long to train may change between resumed runs; bf16 autocast changes speed, not the stored weights
    resumable = ("epochs", "max_minutes", "patience", "bf16_autocast", "device")
    if config.lr_schedule:  # the schedule is laid out over ``epochs``: more epochs would be another schedule
        resumable = resumable[1:]
    training = {k: v for k, v in asdict(config).items() if k not in resumable}
    if config.lr_schedule is None:  # the default: checkpoints from before the option stay valid
        del training["lr_schedule"], training["warmup_epochs"]
    if not config.fit_epochs_to_budget:  # likewise
        del training["fit_epochs_to_budget"]
    identity = {"model": model.describe(), "training": training, "data": data.fingerprint()}
    if warm_start:  # weights trained before (another model's): a checkpoint continues only those same weights
        identity["starts_from"] = weights_fingerprint(model)
    return json.loads(json.dumps(identity))  # as it comes back from state.json: tuples (NCF's layer sizes) as lists


def _n_batches(batches, data: SequenceData, config: TrainingConfig) -> int:
    """Batches in an epoch: their ``len``, or one per ``batch_size`` users for a plain generator."""
    return len(batches) if hasattr(batches, "__len__") else math.ceil(data.n_users / config.batch_size)


class CosineSchedule:
    """The learning-rate multiplier of each optimiser step: linear warm-up, then a half cosine to zero at the
    last planned epoch. A callable object rather than a closure, so that :meth:`plan` can shorten the horizon."""

    def __init__(self, steps_per_epoch: int, warmup_epochs: float, epochs: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.warmup = round(warmup_epochs * steps_per_epoch)
        self.plan(epochs)

    def plan(self, epochs: int) -> None:
        """End the cosine at ``epochs`` (the steps taken so far keep their rates)."""
        self.total = epochs * self.steps_per_epoch

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_schedule(steps_per_epoch: int, config: TrainingConfig) -> CosineSchedule:
    """The config's cosine over its ``epochs``."""
    return CosineSchedule(steps_per_epoch, config.warmup_epochs, config.epochs)


def planned_epochs(config: TrainingConfig, epochs_done: int, seconds: float) -> int:
    """How many epochs fit the budget at the pace of the first ``epochs_done`` (their training, validation and
    checkpoints in ``seconds``): at most ``config.epochs``, at least those done."""
    pace = seconds / epochs_done
    return max(epochs_done, min(config.epochs, math.floor(60 * config.max_minutes / pace)))


def _horizon(state: dict, config: TrainingConfig) -> int:
    """The epochs this run trains: those planned for the budget, else the config's."""
    return state.get("planned_epochs", config.epochs)


def _read_checkpoint(folder: Path) -> tuple[dict, dict, dict, dict | None]:
    """(state, last weights, optimizer state, best weights) of a checkpoint folder; any unreadable file raises."""
    state = json.loads((folder / "state.json").read_text())
    last = load_file(folder / LAST_WEIGHTS)
    # tensors and plain containers only; on the CPU first (load_state_dict moves them to the model's device)
    saved = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
    best = load_file(folder / BEST_WEIGHTS) if state["best_epoch"] else None
    return state, last, saved, best


def _move_damaged(folder: Path, error: Exception) -> None:
    """Keep a damaged checkpoint for inspection under another name, so training can start afresh by itself."""
    aside = folder.with_name(f"{folder.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    warnings.warn(
        f"The checkpoint in {folder} cannot be read ({describe_error(error)}); it was written "
        f"by something other than a finished save (a full disk, a copy cut short). Moved it to {aside.name} and "
        "training from the start.",
        stacklevel=3,
    )


def _load_state(model, optimizer, scheduler, folder: Path, identity: dict) -> dict | None:
    """Resume from ``folder``: None when it holds no checkpoint (or a damaged one, which is moved aside)."""
    if not (folder / "state.json").exists():
        return None
    try:
        state, last, saved, _ = _read_checkpoint(folder)
    except Exception as error:  # noqa: BLE001 - json, safetensors, pickle and I/O each raise their own type
        _move_damaged(folder, error)
        return None
    if "stop_reason" not in state:
        raise StaleArtifactError(
            f"The checkpoint in {folder} was written by an older version of palr_utils (its state.json has no "
            "stop_reason). Delete the folder and rerun the notebook that trains it (03) to train afresh."
        )
    if state["identity"] != identity:
        raise StaleArtifactError(
            f"The checkpoint in {folder} was trained with {state['identity']}, not {identity}. "
            "Delete the folder or use another ARTIFACT_DIR to train afresh."
        )
    model.load_state_dict(last)
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    return state


def _save_state(model, optimizer, scheduler, folder: Path, state: dict, is_best: bool) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name in (LAST_WEIGHTS, BEST_WEIGHTS) if is_best else (LAST_WEIGHTS,):
        with atomic_path(folder / name) as tmp:
            save_file(weights, str(tmp))
    with atomic_path(folder / "optimizer.pt") as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler and scheduler.state_dict()}, tmp)
    write_json(state, folder / "state.json")  # written last: it vouches for the files above


def _optimizer_and_scheduler(model: TorchRetriever, data: SequenceData, config: TrainingConfig):
    """Adam, and the learning-rate policy the config asks for (None, a plateau decay or a cosine per step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.lr_decay_factor:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.lr_decay_factor, patience=config.lr_decay_patience
        )
    elif config.lr_schedule == "cosine":
        steps_per_epoch = _n_batches(model.batches(data, np.random.default_rng(0), config.batch_size), data, config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(steps_per_epoch, config))
    else:
        scheduler = None
    return optimizer, scheduler


def _start_state(model, optimizer, scheduler, folder: Path | None, *, identity: dict, seed: int):
    """(state, rng): the checkpoint's state to resume from, or a fresh one."""
    state = _load_state(model, optimizer, scheduler, folder, identity) if folder else None
    if state is None:
        state = {"identity": identity, "epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "stale": 0,
                 "history": [], "seconds": 0.0, "finished": False, "stop_reason": None}  # fmt: skip
        return state, np.random.default_rng(seed)
    # the RNG restarts from the epoch count, so a resumed run shuffles like an uninterrupted one
    return state, np.random.default_rng([seed, state["epoch"]])


def _train_epoch(model, optimizer, scheduler, data, rng, *, config: TrainingConfig, epoch: int, progress: bool):
    """One pass over the batches; returns the mean training loss."""
    model.train()
    losses = []
    use_bf16 = config.uses_bf16(model.device)
    steps_scheduler = isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    batches = model.batches(data, rng, config.batch_size)
    total = _n_batches(batches, data, config)
    bar_off = not progress or progress_bars_disabled()
    for batch in tqdm(batches, total=total, desc=f"{model.name} epoch {epoch}", disable=bar_off, leave=False):
        losses.append(training_step(model, optimizer, batch, use_bf16))
        if steps_scheduler:
            scheduler.step()
    return float(np.mean(losses))


def _validate(model, optimizer, scheduler, state: dict, *, loss: float, config: TrainingConfig, out_of_time: bool):
    """Validation NDCG@10 after an epoch: the history row, the best so far and whether to stop; True if best."""
    model.eval()
    metrics = model.evaluate(VALID)
    row = {"epoch": state["epoch"], "loss": loss, "val_hr@10": metrics["hr@10"],
           "val_ndcg@10": metrics["ndcg@10"], "seconds": state["seconds"]}  # fmt: skip
    if scheduler is not None:
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            scheduler.step(metrics["ndcg@10"])
        row["learning_rate"] = optimizer.param_groups[0]["lr"]
    state["history"].append(row)
    is_best = metrics["ndcg@10"] > state["best_ndcg"]
    if is_best:
        state.update(best_ndcg=metrics["ndcg@10"], best_epoch=state["epoch"], stale=0)
    else:
        state["stale"] += 1
    # "finished" means stopped for good (no progress, or out of time); more epochs can resume a run
    state["finished"] = state["stale"] >= config.patience or out_of_time
    state["stop_reason"] = "patience" if state["stale"] >= config.patience else "budget" if out_of_time else None
    return is_best


def _load_best(model, folder: Path | None, best_weights: dict | None, device: torch.device) -> None:
    """The best validation weights into ``model`` (from the checkpoint folder, or kept in memory)."""
    if folder and (folder / BEST_WEIGHTS).exists():
        model.load_state_dict(load_file(folder / BEST_WEIGHTS, device=str(device)))
    elif best_weights is not None:
        model.load_state_dict(best_weights)
    model.eval()


def train(
    model: TorchRetriever,
    data: SequenceData,
    config: TrainingConfig,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    warm_start: bool = False,
) -> pd.DataFrame:
    """Train ``model`` with Adam, early-stop on validation NDCG@10 and load the best weights.

    ``warm_start``: the model holds trained weights (e.g. another SASRec's) and training continues from them; a
    checkpoint of this training is then resumed only from those same starting weights.
    Returns the history: one row per validation run (epoch, loss, val metrics, seconds).
    """
    torch.manual_seed(config.seed)
    model.data = data
    device = resolve_device(config.device)
    model.to(device)
    optimizer, scheduler = _optimizer_and_scheduler(model, data, config)
    folder = Path(checkpoint_dir) if checkpoint_dir else None
    identity = _identity(model, data, config, warm_start)  # before a checkpoint's weights replace the start
    state, rng = _start_state(model, optimizer, scheduler, folder, identity=identity, seed=config.seed)

    started = time.perf_counter() - state["seconds"]
    best_weights = None
    if "planned_epochs" in state:  # a resumed run keeps the horizon it measured
        scheduler.lr_lambdas[0].plan(state["planned_epochs"])
    while not state["finished"] and state["epoch"] < _horizon(state, config):
        epoch = state["epoch"] + 1
        loss = _train_epoch(model, optimizer, scheduler, data, rng, config=config, epoch=epoch, progress=progress)
        state["epoch"] = epoch
        state["seconds"] = time.perf_counter() - started
        out_of_time = config.max_minutes is not None and state["seconds"] > 60 * config.max_minutes
        if epoch % config.eval_every and epoch < _horizon(state, config) and not out_of_time:
            continue
        is_best = _validate(model, optimizer, scheduler, state, loss=loss, config=config, out_of_time=out_of_time)
        if config.fit_epochs_to_budget and "planned_epochs" not in state:  # the pace of the first validated epochs
            state["planned_epochs"] = planned_epochs(config, epoch, time.perf_counter() - started)
            scheduler.lr_lambdas[0].plan(state["planned_epochs"])
        if progress:
            # named by its checkpoint folder, so that two trainings of one model (SASRec and its twin) read apart
            label = folder.name if folder else model.name
            print(f"{label} epoch {epoch}: loss {loss:.4f}, val NDCG@10 {state['history'][-1]['val_ndcg@10']:.4f}"
                  f"{' (best)' if is_best else ''}", flush=True)  # fmt: skip
        if folder:
            _save_state(model, optimizer, scheduler, folder, state, is_best)
        elif is_best:
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    _load_best(model, folder, best_weights, device)
    model.train_seconds = state["seconds"]
    model.best_epoch = state["best_epoch"]
    model.epochs_run = state["epoch"]
    model.planned_epochs = _horizon(state, config)
    # why training ended: "patience", "budget" or "epochs" (None: not finished, e.g. stopped mid-epoch by a kill)
    model.stop_reason = state["stop_reason"] or ("epochs" if state["epoch"] >= model.planned_epochs else None)
    return pd.DataFrame(state["history"])


def load_trained(model: TorchRetriever, data: SequenceData, checkpoint_dir: str | Path) -> TorchRetriever:
    """``model`` with the best weights of a finished training (e.g. notebook 03's SASRec), reading ``data``: for
    exercises and benchmarks that use a trained retriever without training it again."""
    path = Path(checkpoint_dir) / BEST_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the retriever has no trained weights there yet. Run the "
                                "notebook that trains it (03) with this ARTIFACT_DIR first.")  # fmt: skip
    model.data = data
    _load_best(model, path.parent, None, model.device)
    return model
