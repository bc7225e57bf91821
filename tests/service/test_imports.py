"""A serving worker starts without the training-only libraries: each worker process imports
the app, and LightGBM, matplotlib, scikit-learn and the sentence encoder cost seconds each on a
loaded box (longer than uvicorn's worker health check, which then respawns the worker)."""

from __future__ import annotations

import json
import subprocess
import sys

TRAINING_ONLY = ("lightgbm", "matplotlib", "sklearn", "sentence_transformers", "implicit", "optuna")


def test_the_service_app_imports_no_training_library() -> None:
    code = (
        "import json, sys; import funnelrec.serve.app, funnelrec.serve.launch; "
        f"print(json.dumps([m for m in {list(TRAINING_ONLY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
