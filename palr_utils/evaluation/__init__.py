"""Notebook 05: the same users and candidates ranked by every method, the answers parsed, fusion with
the retriever, and the paired intervals against SASRec."""
