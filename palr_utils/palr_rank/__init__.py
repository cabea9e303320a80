"""PALR-rank: an LLM trained to *rank* the retriever's candidates, all of them in one forward pass.

Our extension beyond the paper. PALR_v2 learns to *write* answers token by token; PALR-rank asks a small
model a simpler question of every candidate, so that it needs no letter to tie back to a title (why, and what
was tried first: docs/results.md, "PALR-rank"):

* **the prompt**: a user's history (their training items but the last) and the instruction "answer Yes if
  the user is likely to have watched it next"; then every candidate as its own line, ``Title:``, after it;
* **parallel candidates**: one sequence holds the prompt and all K lines; an attention mask lets each line
  read the prompt and itself but not the other lines, and each line's positions start where the prompt ends.
  Each candidate is thus judged as if it were alone after the prompt, for the price of one forward pass
  (the prompt is read once), and its place in the list cannot matter: no position bias;
* **the score** of a candidate: the logit of " Yes" minus the logit of " No" after its line;
* **the loss** (listwise): the cross-entropy of the K scores, with the last training item as the right answer.
  Users whose last item is not among their candidates give no example;
* **the candidates** come from a retriever trained *one step back* (without each user's last training item):
  the full retriever learned those very transitions and would list its own training answers far more often
  than it lists test items (docs/results.md, "PALR-rank").

TRL's ``SFTTrainer`` does the training (``ListwiseCandidateTrainer`` changes the batches and the loss).
Validation and test items never enter an example: the history and its next item are training data.
"""
