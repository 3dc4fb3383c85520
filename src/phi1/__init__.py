"""phi1: build small, strong code language models the phi-1 way."""

__version__ = "0.1.0"
