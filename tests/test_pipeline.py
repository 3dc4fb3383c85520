"""`phi1 run`, `phi1 report` and `phi1 ablate` end to end on a smaller-than-tiny config (slow: minutes)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, phi1_cmd
from phi1.report import FIGURES

MICRO = [
    "corpus.max_files=150", "curate.annotate_samples=80", "curate.n_estimators=50", "curate.keep=top_fraction",
    "curate.keep_fraction=0.5", "synth.textbook_samples=30", "synth.exercise_samples=40", "tokenize.vocab_size=512",
    "tokenize.seq_len=64", "model.overrides={num_hidden_layers: 2, hidden_size: 64, intermediate_size: 256, "
    "num_attention_heads: 4}", "pretrain.max_steps=40", "pretrain.batch_size=8", "pretrain.micro_batch_size=8",
    "pretrain.checkpoint_every=10", "pretrain.eval_every=20", "pretrain.lr=3e-3", "finetune.max_steps=10",
    "finetune.batch_size=8", "finetune.micro_batch_size=8", "evaluate.max_new_tokens=24", "evaluate.batch_size=32",
    "ablate.epochs_passes=[1,4]", "ablate.epochs_steps=16", "evaluate.perturb=[func_name]", "evaluate.variants=1",
]  # fmt: skip


def _args(run_dir: Path, *extra: str) -> list[str]:
    sets = [a for s in MICRO for a in ("--set", s)]
    return [*sets, "--run-dir", str(run_dir), *extra]


@pytest.mark.slow
def test_run_end_to_end_rerun_and_resume(tmp_path: Path, cli_env: dict) -> None:
    # As on an AVX2-only CPU, whatever this one has: torch and oneDNN capped, so bf16 would be emulated.
    cli_env = {**cli_env, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(phi1_cmd("run", *_args(run_dir)), env=cli_env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    ckpt = run_dir / "pretrain" / "checkpoints" / "step-0000010"
    deadline = time.monotonic() + 900
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run must have reached pretraining"
    assert not (run_dir / "pretrain" / "final").exists()

    done = subprocess.run(phi1_cmd("run", *_args(run_dir)), env=cli_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"report: {run_dir / 'report.md'}" in done.stdout
    for stage in ("corpus", "annotations", "embeddings", "classifier", "filtered", "textbook", "exercises", "clean",
                  "tokenizer", "tokens", "pretrain", "finetune", "eval"):  # fmt: skip
        m = json.loads((run_dir / stage / "manifest.json").read_text())
        assert m["status"] == "complete", stage
    pre = json.loads((run_dir / "pretrain" / "manifest.json").read_text())
    assert pre["resumed_from"] in (10, 20, 30)
    # Precision is recorded wherever a model computed, and on this (capped) CPU it is fp32 everywhere.
    for stage in ("embeddings", "clean", "pretrain", "finetune", "eval"):
        m = json.loads((run_dir / stage / "manifest.json").read_text())
        assert m["precision"]["dtype"] == "fp32" and "AVX2" in m["precision"]["reason"], stage
    assert not any('"dtype": "bf16"' in p.read_text() for p in run_dir.rglob("manifest.json"))
    # The teacher was paid once: the rerun's annotations came from the cache.
    assert json.loads((run_dir / "annotations" / "manifest.json").read_text())["teacher"]["requests"] == 80
    report = (run_dir / "report.md").read_text()
    for figure in FIGURES:
        png = run_dir / "figures" / f"{figure}.png"
        assert png.exists() and png.stat().st_size > 5000, figure
        assert f"figures/{figure}.png" in report
    assert "pretrain/manifest.json" in report and "| base | humaneval |" in report
    assert f"`phi1 view {run_dir}`" in report  # every record behind the report, in the browser
    # Robustness (evaluate.perturb): a table per model, benchmark and category, and its figure.
    assert "## Robustness to prompt style" in report and "| finetuned | humaneval | func_name | 164 |" in report
    assert (run_dir / "figures" / "robustness.png").stat().st_size > 5000
    assert (run_dir / "eval" / "finetuned" / "humaneval" / "perturbed" / "func_name.jsonl").exists()
    # How strong the exercises' tests are: the histogram, and what the gate and the repair round did.
    ex = json.loads((run_dir / "exercises" / "manifest.json").read_text())
    assert "## Exercise tests" in report and (run_dir / "figures" / "mutation_scores.png").stat().st_size > 5000
    assert f"- {ex['counts']['repaired']:,} kept after a repair round" in report and ex["counts"]["repaired"] >= 1
    assert ex["mutation"]["scored"] == ex["counts"]["verified"] and ex["mutation"]["mean"] >= 0.7
    assert "## Precision" in report and "| [pretrain](pretrain/manifest.json) | cpu | fp32 |" in report
    assert "| base | humaneval | tau >= 0.95 |" in report and "| execution twin |" in report  # Table 3
    # Tables, not raw dicts; a figure that does not apply on a CPU says so.
    assert "| pretrain | " in report and "| n/a (CPU) |" in report and "MFU None" not in report
    assert '{"' not in report and "| clean: exercise |" in report and "| token set |" in report
    ev = json.loads((run_dir / "eval" / "manifest.json").read_text())
    assert set(ev["results"]) == {"base", "finetuned"}
    split = ev["results"]["base"]["humaneval"]["similarity_split"]
    assert split["similar"]["problems"] + split["not_similar"]["problems"] == 164

    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and "sqlite" not in p.name
              and p.name != "config.yaml" and "report.md" not in p.name and "figures" not in p.parts}  # fmt: skip
    again = subprocess.run(phi1_cmd("run", *_args(run_dir)), env=cli_env, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after  # a second run does nothing (only the report is written again)

    dry = subprocess.run(phi1_cmd("run", "--config", str(ROOT / "configs" / "phi-1.yaml"), "--dry-run"), env=cli_env,
                         capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0 and "GPU-hours" in dry.stdout and "1,418.3M parameters" in dry.stdout

    fig = subprocess.run(phi1_cmd("ablate", *_args(run_dir)), env=cli_env, cwd=ROOT, capture_output=True, text=True,
                         timeout=1200)  # fmt: skip
    assert fig.returncode == 0, fig.stderr[-3000:]
    ab = json.loads((run_dir / "ablate" / "manifest.json").read_text())
    assert set(ab["results"]) == {"unfiltered", "textbook", "exercises"}
    assert all(r["humaneval_loss"] is not None and "humaneval pass@1" in r for r in ab["results"].values())
    assert (run_dir / "ablate" / "figure_2_1.png").stat().st_size > 5000
    co = subprocess.run(phi1_cmd("ablate", "--study", "contamination", *_args(run_dir)), env=cli_env, cwd=ROOT,
                        capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert co.returncode == 0, co.stderr[-3000:]
    study = json.loads((run_dir / "ablate_contamination" / "manifest.json").read_text())
    assert set(study["results"]) == {"all", "pruned"}
    assert study["results"]["all"]["exercises"] >= study["results"]["pruned"]["exercises"] > 0
    assert "| all (" in study["table"] and "| pruned (" in study["table"] and "tau >= 0.9" in study["table"]
    subprocess.run(phi1_cmd("report", "--run-dir", str(run_dir)), env=cli_env, cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    assert "ablate --study contamination" in (run_dir / "report.md").read_text()
    ep = subprocess.run(phi1_cmd("ablate", "--study", "epochs", *_args(run_dir)), env=cli_env, cwd=ROOT,
                        capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert ep.returncode == 0, ep.stderr[-3000:]
    rows = json.loads((run_dir / "ablate_epochs" / "manifest.json").read_text())["results"]
    assert [r["passes"] for r in rows] == [1, 4] and rows[1]["unique_tokens"] < rows[0]["unique_tokens"]
    assert all(r["val_loss"] for r in rows) and (run_dir / "ablate_epochs" / "epochs.png").exists()


def test_stage_selection_from_only_until() -> None:
    from phi1.errors import Phi1Error
    from phi1.pipeline import STAGES, chosen_stages

    assert chosen_stages() == list(STAGES)
    assert chosen_stages(until="tokenize") == ["curate", "synth", "clean", "tokenize"]
    assert chosen_stages(from_stage="clean", until="pretrain") == ["clean", "tokenize", "pretrain"]
    assert chosen_stages(from_stage="evaluate") == ["evaluate", "report"]
    assert chosen_stages(only="synth") == ["synth"]
    with pytest.raises(Phi1Error, match="unknown stage 'tokenise'"):
        chosen_stages(until="tokenise")
    with pytest.raises(Phi1Error, match="--until clean comes before --from tokenize"):
        chosen_stages(from_stage="tokenize", until="clean")
    with pytest.raises(Phi1Error, match="--only runs one stage"):
        chosen_stages(only="clean", until="tokenize")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the estimate is for machines without a GPU")
def test_dry_run_on_a_machine_without_a_gpu_estimates_its_cpu_training_time(tmp_path: Path) -> None:
    import re

    from phi1.config import load_config
    from phi1.pipeline import CPU_TRAINING_SHARE, plan

    lines = plan(load_config(ROOT / "configs" / "phi-1.yaml"), tmp_path)
    flops = float(re.search(r"^training: +(\S+) FLOPs", lines[-2]).group(1))
    here = re.fullmatch(r"this machine:  no GPU; ~([\d,.]+) h of training on its (\d+) CPU cores \((bf16|fp32) matmuls "
                        r"measured at ([\d,]+) GFLOP/s, training at about 60% of that\)", lines[-1])  # fmt: skip
    assert here, lines[-1]
    hours, rate = float(here[1].replace(",", "")), float(here[4].replace(",", ""))
    # phi-1's 7e20 FLOPs are decades on a CPU: the plan says so, from this CPU's measured matmul rate.
    assert rate > 1 and hours == pytest.approx(flops / (CPU_TRAINING_SHARE * rate * 1e9) / 3600, rel=0.01)
    tiny = plan(load_config(ROOT / "configs" / "tiny.yaml"), tmp_path)
    assert not any(line.startswith("this machine:") for line in tiny)  # too small to train near the matmul rate
