"""Helpers for the PALR tutorial notebooks: data, retrieval, user profiles, fine-tuning, run presets, plots.

Each submodule holds one concept; the notebooks import what a lesson needs.
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
