"""`python -m llmops_trainer.worker --job-dir DIR`: one process (rank) of a training job."""

from __future__ import annotations

import os

# One OpenMP thread per process unless the launcher says otherwise: set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from llmops_trainer.worker.launch import extensions_dir

# The launcher sets it; a bare `python -m llmops_trainer.worker` gets the same folder.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir())

from llmops_trainer.worker.run import main

if __name__ == "__main__":
    raise SystemExit(main())
