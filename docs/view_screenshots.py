"""The screenshots in docs/view.md and the README: each view of a run (and two runs side by side, with
--other), served by `phi1 view` and taken in Debian's chromium through Playwright.

    .venv/bin/python docs/view_screenshots.py [--run-dir runs/demo] [--other runs/tiny] [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--other", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from phi1.view import running

    runs = [args.run_dir] + ([args.other] if args.other else [])
    flags = pq.read_table(args.run_dir / "clean" / "benchmark_flags.parquet").to_pylist()
    flag = next((f for f in flags if f["detector"] == "ngram"), flags[0])
    exercise = pq.read_table(next((args.run_dir / "exercises").glob("data-*.parquet"))).slice(0, 1).to_pylist()[0]
    shots = {
        "view_overview": "/a/",
        "view_records": "/a/records/removed?f.reason=near_duplicate",
        "view_pair": f"/a/pair/{flag['id']}/{flag['task_id']}",
        "view_exercise": f"/a/records/exercises/{exercise['id']}",
        "view_mutants": f"/a/mutants/{exercise['id']}",
        "view_eval": "/a/eval",
        "view_problem": "/a/eval/finetuned/humaneval/HumanEval/23",
    }
    if args.other:
        shots["view_compare"] = "/"
    with running(runs) as served, sync_playwright() as p:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for name, url in shots.items():
            page.goto(served.url + url)
            page.screenshot(path=str(args.out / f"{name}.png"))
            print(f"{args.out / name}.png: {url}")
        browser.close()


if __name__ == "__main__":
    main()
