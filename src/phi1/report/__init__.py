"""`phi1 report`: report.md and PNG figures from a run directory's manifests. Every number in the report
links to the manifest it came from.

Public API: `write_report`, `FIGURES` (those every report has; `robustness.png` too where the run measured it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error
from phi1.report.common import manifest
from phi1.report.data import curation_section, data_section, synthetic_section
from phi1.report.evaluation import evaluation_section
from phi1.report.exercise_tests import FIGURE as TESTS_FIGURE
from phi1.report.exercise_tests import exercise_tests_section
from phi1.report.robustness import FIGURE as ROBUSTNESS_FIGURE
from phi1.report.robustness import robustness_section
from phi1.report.training import precision_lines, teacher_and_time_section, training_section
from phi1.rundir import save_text
from phi1.stages import STAGES

FIGURES = ("funnel", "edu_scores", "diversity", "loss_curves", "pass_at_1", "similarity_split", "stage_times")


def write_report(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise Phi1Error(f"{run_dir}: no such run directory")
    # Every folder the registry's stages write, in the recipe's order.
    m = {name: manifest(run_dir, name) for stage in STAGES.values() for name in stage.steps}
    fig_dir = run_dir / "figures"
    lines = [f"# phi1 run report: `{run_dir.name}`", ""]
    lines += [f"Every record and result behind these numbers, in your browser: `phi1 view {run_dir}`", ""]
    lines += data_section(m, fig_dir)
    lines += curation_section(m, fig_dir)
    lines += synthetic_section(m, fig_dir)
    tests = exercise_tests_section(m, fig_dir)  # only where exercises were scored (synth.max_mutants > 0)
    lines += tests
    lines += training_section(m, fig_dir, run_dir)
    lines += evaluation_section(m, fig_dir, run_dir)
    robustness = robustness_section(m, fig_dir)  # only where the run measured it (evaluate.perturb)
    lines += robustness
    lines += teacher_and_time_section(m, fig_dir)
    lines += precision_lines(m)
    save_text(run_dir / "report.md", "\n".join(lines))
    figures = [*FIGURES, *([TESTS_FIGURE] if tests else []), *([ROBUSTNESS_FIGURE] if robustness else [])]
    return {"report": str(run_dir / "report.md"), "figures": [str(fig_dir / f"{f}.png") for f in figures]}
