"""What makes the notebooks a course: running them (papermill), publishing lessons, notebook set-up,
plots and the sentences that read each result from the run."""
