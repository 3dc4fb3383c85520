"""Training: the loop (single process, DDP, FSDP2 under torchrun), the schedule, checkpoints.

Public API: `train` (one phase of a run directory). The loop's components (`build`, `distributed`,
`checkpoint`, `metrics`, `validate`, `batches`) are the package's own.
"""

from phi1.train.loop import train

__all__ = ["train"]
