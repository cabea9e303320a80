"""The building blocks every stage uses: names and paths, files written atomically, caches, hashing,
devices, metrics, user sampling, title matching, settings overrides and the paper's reported numbers.
Nothing here imports another folder of palr_utils."""
