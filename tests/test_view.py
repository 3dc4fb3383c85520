"""`phi1 view` over a real run directory (the data stages of a micro run, and `phi1 eval` on real samples):
every count leads to its records, filters and search, contamination pairs, exercises, per-problem results,
two runs side by side; hostile text stays text in a real browser; nothing outside the run is served and
nothing in it changes."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from markupsafe import escape

from conftest import ROOT, phi1_cmd
from phi1.view import running

MICRO_DATA = [
    "corpus.max_files=120", "curate.annotate_samples=60", "curate.n_estimators=30", "curate.keep=top_fraction",
    "curate.keep_fraction=0.5", "synth.textbook_samples=20", "synth.exercise_samples=40",
    "clean.function_k=0",  # no execution twins of corpus functions: 15 s less, and AST look-alikes remain
]  # fmt: skip
HOSTILE = (
    '<script>window.__pwned = 1; alert("x")</script>'
    '<img src=x onerror="window.__pwned = 2; alert(2)">'
    '<a href="javascript:window.__pwned = 3">click me</a>'
)
TRAVERSALS = ("/a/figures/../config.yaml", "/a/figures/..%2fconfig.yaml", "/a/figures/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "/static/../../../../etc/passwd", "/a/records/..%2f..%2fetc/passwd", "//etc/passwd")  # fmt: skip
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _add_hostile(run_dir: Path) -> None:
    """Model- and corpus-written text as an attacker would write it: an exercise, a teacher's answer and a
    completion, beside the run's own records (shards of the same schema, as the stages write them)."""
    ex = pq.read_table(next((run_dir / "exercises").glob("data-*.parquet")))
    row = ex.slice(0, 1).to_pylist()[0]
    row.update(id="hostile-exercise", text=HOSTILE, prompt=HOSTILE, solution=HOSTILE, tests=HOSTILE, topic=HOSTILE)
    pq.write_table(pa.Table.from_pylist([row], schema=ex.schema), run_dir / "exercises" / "data-09999.parquet")
    an = pq.read_table(next((run_dir / "annotations").glob("data-*.parquet")))
    row = an.slice(0, 1).to_pylist()[0]
    row.update(id="hostile-rating", answer=HOSTILE)
    pq.write_table(pa.Table.from_pylist([row], schema=an.schema), run_dir / "annotations" / "data-09999.parquet")


def _eval(run_dir: Path, model: str, completions: dict[str, str]) -> None:
    samples = run_dir.parent / f"{model}-samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in completions.items()))
    out = run_dir / "eval" / model / "humaneval"
    done = subprocess.run(phi1_cmd("eval", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out),
                                   "--k", "1"), cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("view") / "run"
    sets = [a for s in MICRO_DATA for a in ("--set", s)]
    done = subprocess.run(phi1_cmd("run", *sets, "--run-dir", str(run), "--until", "clean"), cwd=ROOT,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _add_hostile(run)
    from phi1.evaluate import benchmarks

    problems = benchmarks.load("humaneval").problems
    tasks = list(problems)[:6]
    right = {t: problems[t].reference for t in tasks}
    _eval(run, "base", {**right, tasks[0]: "    return None\n", tasks[1]: "    return None\n"})
    _eval(run, "finetuned", {**right, tasks[0]: "    return None\n", tasks[2]: "    " + HOSTILE + "\n"})
    # The reference solutions on renamed-function variants of two problems (evaluate.perturb's files).
    done = subprocess.run(phi1_cmd("eval", "--benchmark", "humaneval", "--canonical", "--perturb", "func_name",
                                   "--variants", "1", "--task-ids", ",".join(tasks[:2]), "--k", "1",
                                   "--out", str(run / "eval" / "reference" / "humaneval")),
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def client(run_dir: Path):
    from starlette.testclient import TestClient

    from phi1.view.app import make_app

    return TestClient(make_app([run_dir]))


def _rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("data-*.parquet")) for r in pq.read_table(p).to_pylist()]


def _files(run_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}


def test_every_count_on_the_overview_leads_to_its_records(client, run_dir: Path) -> None:
    import re

    page = client.get("/a/").text
    links = re.findall(r'<a href="(/a/records/[^"]+)">([\d,]+)</a>', page)
    assert len(links) >= 6
    removed = json.loads((run_dir / "clean" / "manifest.json").read_text())["counts"]["removed"]
    for reason in removed:
        assert any(f"f.reason={reason}" in href for href, _ in links), reason
    for href, shown in links:
        listed = client.get(href.replace("&amp;", "&")).text
        total = re.search(r"<small>\(([\d,]+) records?\)</small>", listed)
        assert total and total.group(1) == shown, href


def test_filters_search_order_and_pages(client, run_dir: Path) -> None:
    ex = _rows(run_dir / "exercises")
    topic = ex[0]["topic"]
    page = client.get("/a/records/exercises", params={"f.topic": topic}).text
    assert f"<small>({sum(r['topic'] == topic for r in ex)} record" in page
    word = ex[3]["prompt"].split("(")[0].split()[-1]  # a function's name
    page = client.get("/a/records/exercises", params={"q": word.upper()}).text  # search ignores case
    assert ex[3]["id"] in page and f"<small>({sum(word in r['text'] or word in r['tests'] for r in ex)} record" in page
    page = client.get(
        "/a/records/exercises", params={"order": "mutation_score", "desc": "1", "min.mutation_score": "0.9"}
    )
    scores = [float(s) for s in __import__("re").findall(r'<span class="cell">(0\.\d+|1\.0)</span>', page.text)]
    assert scores and all(s >= 0.9 for s in scores)
    corpus = client.get("/a/records/corpus", params={"offset": "100"}).text
    assert "101–120 of 120" in corpus and "previous" in corpus


def test_record_lineage_contamination_pair_and_exercise(client, run_dir: Path) -> None:
    removed = pq.read_table(run_dir / "clean" / "removed.parquet").to_pylist()
    flags = pq.read_table(run_dir / "clean" / "benchmark_flags.parquet").to_pylist()
    assert flags, "the micro run's stdlib corpus has benchmark look-alikes"
    f = flags[0]
    pair = client.get(f"/a/pair/{f['id']}/{f['task_id']}").text
    assert f["detector"] in pair and "Evidence" in pair and f["task_id"] in pair
    assert ("<mark>" in pair) == (f["detector"] == "ngram") or "AST similarity" in pair
    ast_flag = next(x for x in flags if x["detector"] == "ast")
    page = client.get(f"/a/pair/{ast_flag['id']}/{ast_flag['task_id']}").text
    tau = float(__import__("re").search(r"best function\)</td><td>([\d.]+)<", page).group(1))
    assert "matches best by AST shape" in page and tau == pytest.approx(ast_flag["score"], abs=1e-3)
    gone = next(r for r in removed if r["reason"] == f"benchmark_{f['detector']}" and r["id"] == f["id"])
    record = client.get(f"/a/records/removed/{gone['id']}").text
    assert "Lineage" in record and gone["reason"] in record and "Text (from the stage that wrote it)" in record
    ex = _rows(run_dir / "exercises")[0]
    page = client.get(f"/a/records/exercises/{ex['id']}").text
    for part in ("Prompt (input)", "Solution (output)", "Tests", "mutation_score", f"/a/mutants/{ex['id']}"):
        assert part in page
    repaired = next(r for r in _rows(run_dir / "exercises") if r["repairs"])  # the offline teacher's weak tests
    page = client.get(f"/a/records/exercises/{repaired['id']}").text
    assert "Before the repair" in page and str(escape(repaired["first_problem"])) in page
    mutants = client.get(f"/a/mutants/{ex['id']}").text  # run again in the sandbox: the stage's own score
    assert f"(score {ex['mutation_score']:.3f};" in mutants
    survived = int(__import__("re").search(r"(\d+) survived", mutants).group(1))
    assert mutants.count("Survivor ") == min(5, survived) and (survived == 0 or '<pre class="diff">' in mutants)


def test_evaluation_per_problem_and_flips(client, run_dir: Path) -> None:
    from phi1.evaluate import benchmarks

    tasks = list(benchmarks.load("humaneval").problems)[:6]
    page = client.get("/a/eval/base/humaneval", params={"status": "failed"}).text
    assert tasks[0] in page and tasks[3] not in page
    one = client.get(f"/a/eval/base/humaneval/{tasks[1]}").text
    assert "base: failed" in one and "finetuned: passed" in one and "AssertionError" in one
    variant = json.loads((run_dir / "eval" / "reference" / "humaneval" / "perturbed" / "func_name.jsonl")
                         .read_text().splitlines()[1])  # fmt: skip
    assert variant["nominal_task_id"] == tasks[1]
    assert (
        "Prompt-style variants" in one
        and f"reference · {variant['task_id']} ({variant['perturbation']}): passed" in one
    )
    assert variant["entry_point"] in one
    listed = client.get("/a/eval/reference/humaneval").text
    assert variant["task_id"] not in listed and variant["task_id"] in client.get(
        "/a/eval/reference/humaneval", params={"variants": "1"}).text  # fmt: skip


def test_two_runs_side_by_side(run_dir: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from phi1.view.app import make_app

    other = tmp_path / "b"
    shutil.copytree(run_dir, other)
    shutil.rmtree(other / "eval" / "base")
    shutil.copytree(run_dir / "eval" / "finetuned", other / "eval" / "base")  # B's base answers as A's finetuned
    page = TestClient(make_app([run_dir, other])).get("/").text
    from phi1.evaluate import benchmarks

    tasks = list(benchmarks.load("humaneval").problems)[:6]
    assert "base / humaneval: A 4 → B 4 of 6" in page
    assert f"/b/eval/base/humaneval/{tasks[1]}" in page and f"/a/eval/base/humaneval/{tasks[2]}" in page


def test_half_written_run_shows_what_it_can(tmp_path: Path, run_dir: Path) -> None:
    from starlette.testclient import TestClient

    from phi1.view.app import make_app

    half = tmp_path / "half"
    shutil.copytree(run_dir, half)
    shutil.rmtree(half / "clean")
    (half / "exercises" / "manifest.json").write_text('{"status": "running"')  # torn
    page = TestClient(make_app([half])).get("/a/").text
    assert "manifest.json unreadable" in page and "not run" in page
    assert "/a/records/textbook" in page


def test_nothing_outside_the_run_is_served_and_nothing_changes(run_dir: Path, client) -> None:
    before = _files(run_dir)
    with running([run_dir]) as served:
        port = served.port
        for path in TRAVERSALS:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)  # sent as written: no client normalises it away
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            assert response.status in (404, 307), path
            assert "root:" not in body and "name:" not in body, path
        for url in ("/a/", "/a/records/corpus", "/a/records/exercises?q=def", "/a/eval"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", url)
            assert conn.getresponse().status == 200
    for url in ("/a/records/flags?order=score&desc=1", "/a/records/removed", "/a/eval/finetuned/humaneval"):
        client.get(url)
    assert _files(run_dir) == before


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it as root)")
def test_in_a_real_browser(run_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with running([run_dir]) as served:
        base = served.url
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + "/")
            assert "Funnel" in page.content()
            link = page.locator("a[href*='records/removed?f.reason=']").first
            shown = link.inner_text()
            link.click()
            page.wait_for_load_state()
            assert f"({shown} record" in page.locator("h1").inner_text()
            page.goto(base + "/a/records/exercises")
            option = page.locator("select[name='f.topic'] option").nth(1)  # the most common topic, "(n)" beside it
            label = option.inner_text()
            page.select_option("select[name='f.topic']", option.get_attribute("value"))
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert f"({label.rsplit('(', 1)[1].rstrip(')')} record" in page.locator("h1").inner_text()
            page.goto(base + "/a/records/exercises")
            page.fill("input[name=q]", "hostile")
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert "(1 record)" in page.locator("h1").inner_text()
            page.click("a[href$='/hostile-exercise']")
            page.wait_for_load_state()
            assert page.locator("pre.input").inner_text().startswith("<script>")  # shown as text
            page.goto(base + "/a/records/annotations/hostile-rating")
            assert "<img src=x" in page.locator("pre.prose").inner_text()
            for link in page.locator("a").all():
                assert not (link.get_attribute("href") or "").startswith("javascript:")
            from phi1.evaluate import benchmarks

            task = list(benchmarks.load("humaneval").problems)[2]
            page.goto(base + f"/a/eval/finetuned/humaneval/{task}")
            assert "window.__pwned" in page.locator("pre.output").last.inner_text()
            assert page.evaluate("window.__pwned") is None and not dialogs
            page.goto(base + "/a/records/flags")
            page.locator("td a[href*='/pair/']").first.click()
            page.wait_for_load_state()
            assert "Evidence" in page.content() and "Training sample" in page.content()
            shot = tmp_path / "pair.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        from PIL import Image

        image = Image.open(shot).convert("L")
        colors = image.getcolors(maxcolors=1 << 16) or []
        assert image.size[0] > 600 and len(colors) > 20  # text and highlighting, not a blank page
