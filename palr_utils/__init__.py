"""Helpers for the PALR tutorial notebooks: data, retrieval, user profiles, fine-tuning, run presets, plots.

Each submodule holds one concept; the notebooks import what a lesson needs.
"""

__version__ = "0.1.0"
