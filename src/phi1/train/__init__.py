"""Training: the loop (single process, DDP, FSDP2 under torchrun), the schedule, checkpoints."""

from phi1.train.loop import train

__all__ = ["train"]
