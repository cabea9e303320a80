"""Helpers for the PALR tutorial notebooks: data, profiles, artifacts, plots.

Each submodule holds one concept; the notebooks import what a lesson needs.
"""

__version__ = "0.1.0"
