"""Evaluation: HumanEval, HumanEval+ and MBPP pass@k, every completion run in the sandbox.

Public API: `phi1.evaluate.run` (`run_eval`, `Source`: `phi1 eval`), `phi1.evaluate.stage` (`evaluate_run`: the
run's evaluate stage, `similarity_split`, `benchmark_paths`), `phi1.evaluate.generate.Sampling`.
"""
