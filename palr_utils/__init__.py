"""Helpers for the PALR tutorial notebooks, one folder per stage of the pipeline.

``core`` (names, files, caches, metrics) <- ``data`` (notebook 01) <- ``retrieval`` (03) <- ``llm`` <- ``profiles``
(02) <- ``finetune`` (04) <- ``palr_rank`` (04) <- ``evaluation`` (05) <- ``presets`` <- ``course`` (running and
publishing the lessons); each imports only the ones before it. The notebooks import what a lesson needs.
"""

import logging
import warnings

__version__ = "0.1.0"

# Two notices of the libraries, not ours to act on, that would otherwise stand in every executed lesson:
# on CPUs with AVX512-BF16, importing bitsandbytes (peft and TRL do) logs that it could not download an optional
# 4-bit CPU kernel from the Hugging Face hub (no preset runs 4-bit on a CPU); and TRL and peft still read the
# model's `is_gradient_checkpointing`, which transformers 5 renamed.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
