"""`python -m llmops_trainer.worker --job-dir DIR`: one process (rank) of a training job."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

# One OpenMP thread per process unless the launcher says otherwise: set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# DeepSpeed JIT-compiles its shared-memory comm op into torch's extension cache. Its build file
# names the virtualenv's include folders, so two virtualenvs sharing ~/.cache/torch_extensions
# rebuild it over each other (minutes each time); one cache folder per interpreter prefix.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR",
    str(
        Path.home() / ".cache" / "torch_extensions"
        / f"llmops-{hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]}"
    ),
)

from llmops_trainer.worker.run import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
