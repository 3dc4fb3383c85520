"""What every `phi1` command shares: the options a run is given (--config, --set, --run-dir) and the run
directory and run context they make."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="run config YAML (default: built-in defaults)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config value: key.sub=value")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="run directory (default: runs/<config name>)")]


def setup_run(config: Path | None, overrides: list[str] | None, run_dir: Path | None) -> tuple[Any, Path]:
    """The config (file, then --set) and the run directory, with the config saved in it."""
    from phi1.config import load_config, save_config

    cfg = load_config(config, overrides)
    path = run_dir or Path("runs") / cfg.name
    path.mkdir(parents=True, exist_ok=True)
    save_config(cfg, path / "config.yaml")
    return cfg, path


def run_context(config: Path | None, overrides: list[str] | None, run_dir: Path | None) -> Any:
    """The run context every stage command runs in: the same one `phi1 run` builds (teacher, cache, sandbox)."""
    from phi1.stages import RunContext

    return RunContext(*setup_run(config, overrides, run_dir))
