"""The GPU check runs end to end on the CPU (``--device cpu --tiny``), so it is ready the day a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from palr_utils.core.paths import project_root

pytestmark = pytest.mark.integration


def test_the_gpu_check_dry_run_measures_every_stage_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny", "--work-dir", str(tmp_path / "w"),
         "--out", str(out)],
        cwd=project_root(), check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert not [key for key in report if key.endswith("_error")], report
    assert report["device"] == "cpu" and report["sasrec"]["parameters_on"] == "cpu"
    assert report["sasrec"]["epochs_run"] == 2 and 0 <= report["sasrec"]["test_ndcg@10"] <= 1
    assert report["qlora"]["quantized_4bit"] and report["qlora"]["steps"] == 3
    assert report["inference"]["scores_finite"] and report["inference"]["answers_generated"] == 8
