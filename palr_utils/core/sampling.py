"""Which users each LLM stage works on: fixed, seeded samples shared by notebooks 02, 04 and 05."""

from __future__ import annotations

import numpy as np


def finetune_users(n_users: int, fraction: float, seed: int) -> np.ndarray:
    """The seeded share of users whose training histories become instruction data (PALR uses 20%)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    rng = np.random.default_rng([seed, 1])
    size = max(1, round(fraction * n_users))
    return np.sort(rng.choice(n_users, size=size, replace=False))


def evaluation_users(n_users: int, n_eval: int | None, seed: int) -> np.ndarray:
    """A fixed, seeded sample of users to evaluate on (all users when ``n_eval`` is None or too large)."""
    if n_eval is None or n_eval >= n_users:
        return np.arange(n_users)
    rng = np.random.default_rng([seed, 2])
    return np.sort(rng.choice(n_users, size=n_eval, replace=False))


def generation_users(evaluated: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded subset of the evaluated users for the slow, generating methods (all of them when ``n`` is None
    or too large); sorted, like the evaluated users."""
    evaluated = np.asarray(evaluated)
    if n is None or n >= len(evaluated):
        return evaluated
    rng = np.random.default_rng([seed, 3])
    return np.sort(rng.choice(evaluated, size=n, replace=False))
