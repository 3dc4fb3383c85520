"""`phi1 view`: a read-only web app over one run directory, or two side by side.

Pages are rendered on the server by Jinja2 with autoescaping on: every record, completion and teacher answer is
model- or corpus-written, and reaches the browser as escaped text (code through Pygments, which escapes too).
The app has no JavaScript of its own and loads nothing from outside the package. It serves only what it renders
and the run's figures by their listed names, so no path outside the run can be asked for.

Routes (`{run}` is `a`, or `b` for the second run of `phi1 view A B`):
    /                                  the overview (one run) or the two runs side by side
    /{run}/                            a run's overview: stages, the funnel, teacher usage, figures
    /{run}/records/{table}             a page of records, with filters (?f.col=v, ?min.col=, ?max.col=), search
                                       (?q=), order (?order=col&desc=1) and paging (?offset=)
    /{run}/records/{table}/{id}        one record, whole, with its lineage
    /{run}/pair/{id}/{task_id}         a flagged sample beside the benchmark problem it matches
    /{run}/eval                        results per model and benchmark, and base vs finetuned
    /{run}/eval/{model}/{benchmark}    per-problem results (?status=, ?q=)
    /{run}/eval/{model}/{benchmark}/{task_id}   one problem: each model's completion and verdict
    /{run}/figures/{name}              a figure of the run's report
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from phi1.evaluate import flips
from phi1.view import evidence
from phi1.view import run as run_info
from phi1.view.tables import BY_NAME, PAGE, Query, RunTables

STATIC = Path(__file__).parent / "static"
CODE_COLUMNS = ("text", "prompt", "solution", "tests", "completion", "first_answer", "first_problem")
# No script may run, nothing may load from elsewhere: a record that slipped past escaping still could not act.
CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'"


@dataclass
class Run:
    key: str
    path: Path
    tables: RunTables
    config: dict[str, Any]


def code(text: Any) -> Markup:
    """Python source highlighted (Pygments escapes every token)."""
    if text is None:
        return Markup("")
    return Markup(highlight(str(text), PythonLexer(), HtmlFormatter(nowrap=True)))


def _env() -> Environment:
    env = Environment(loader=PackageLoader("phi1.view", "templates"), autoescape=select_autoescape(default=True))
    env.filters["code"] = code
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else v)
    return env


def _load_config(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def make_app(run_dirs: list[Path]) -> Starlette:
    """The app over one or two run directories (read in place, never written)."""
    runs = {k: Run(k, p.resolve(), RunTables(p), _load_config(p)) for k, p in zip("ab", run_dirs, strict=False)}
    env = _env()
    css = (STATIC / "style.css").read_text()

    def page(template: str, request: Request, http_status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(template).render(request=request, runs=runs, **context)
        headers = {"Content-Security-Policy": CSP}
        return HTMLResponse(body, status_code=http_status, headers=headers)

    def run_of(request: Request) -> Run:
        key = request.path_params.get("run", "a")
        if key not in runs:
            raise HTTPException(404, f"no run {key!r}")
        return runs[key]

    def home(request: Request) -> Response:
        if len(runs) == 1:
            return RedirectResponse("/a/")
        return page("compare.html", request, pairs=_compare(runs["a"], runs["b"]))

    def overview(request: Request) -> Response:
        r = run_of(request)
        stages = run_info.stages(r.path)
        by_name = {s.name: s for s in stages if s.manifest is not None}
        n = {name: r.tables.count(name) for name in r.tables.tables}
        return page("overview.html", request, run=r, stages=stages, funnel=run_info.funnel(r.path, by_name, n),
                    figures=run_info.figures(r.path), evals=run_info.eval_sets(r.path))  # fmt: skip

    def records(request: Request) -> Response:
        r = run_of(request)
        name = request.path_params["table"]
        table = r.tables.table(name)
        if table is None:
            raise HTTPException(404, f"this run has no {name!r} records")
        q = _query(request, table.columns)
        rows, total = r.tables.page(name, q)
        facets = {c: r.tables.facet(name, c) for c in table.spec.facets if c in table.columns}
        params = {k: v for k, v in request.query_params.items() if k != "offset"}
        return page("records.html", request, run=r, table=table, rows=rows, total=total, q=q, facets=facets,
                    page_size=PAGE, params=params, urlencode=urlencode)  # fmt: skip

    def record(request: Request) -> Response:
        r = run_of(request)
        name, rid = request.path_params["table"], request.path_params["id"]
        row = r.tables.record(name, rid)
        if row is None:
            raise HTTPException(404, f"no record {rid!r} in {name!r}")
        text = None
        if "text" not in row:  # removed rows, flags, ratings: the text is the stage's that wrote it
            found = r.tables.text_of(rid)
            text = found[1].get("text") if found else None
        flags = r.tables.rows_with("flags", "id", rid)
        return page("record.html", request, run=r, name=name, row=row, text=text, lineage=r.tables.lineage(rid),
                    flags=flags, code_columns=CODE_COLUMNS)  # fmt: skip

    def pair(request: Request) -> Response:
        r = run_of(request)
        rid, task = request.path_params["id"], request.path_params["task_id"]
        problem = evidence.problems().get(task)
        found = r.tables.text_of(rid)
        if problem is None or found is None:
            raise HTTPException(404, f"no sample {rid!r} or no problem {task!r}")
        kind = found[1].get("kind") or ("exercise" if found[0] == "exercises" else "code")
        clean_cfg = r.config.get("clean") or {}
        ev = evidence.pair(found[1].get("text") or "", kind, problem, int(clean_cfg.get("ngram_n", 13)),
                           int(clean_cfg.get("ast_min_nodes", 12)))  # fmt: skip
        judged = evidence.judge_answers(r.path / "teacher-cache.sqlite", found[1].get("text") or "", kind, problem)
        flags = [f for f in r.tables.rows_with("flags", "id", rid) if f.get("task_id") == task]
        removed = r.tables.rows_with("removed", "id", rid)
        return page("pair.html", request, run=r, rid=rid, problem=problem, ev=ev, flags=flags, removed=removed,
                    source=found[0], judged=judged)  # fmt: skip

    def mutants(request: Request) -> Response:
        r = run_of(request)
        row = r.tables.record("exercises", request.path_params["id"])
        if row is None:
            raise HTTPException(404, f"no exercise {request.path_params['id']!r}")
        found = surviving_mutants(r.path, row)
        return page("mutants.html", request, run=r, row=row, found=found)

    def evals(request: Request) -> Response:
        r = run_of(request)
        return page("eval.html", request, run=r, evals=run_info.eval_sets(r.path),
                    comparison=run_info.comparison(r.path))  # fmt: skip

    def eval_set(request: Request) -> Response:
        r = run_of(request)
        model, bench = request.path_params["model"], request.path_params["benchmark"]
        found = [e for e in run_info.eval_sets(r.path) if e.model == model and e.benchmark == bench]
        if not found:
            raise HTTPException(404, f"no results for {model}/{bench}")
        rows = run_info.eval_rows(found[0].path)
        status, search = request.query_params.get("status", ""), request.query_params.get("q", "").lower()

        def matches(x: dict[str, Any]) -> bool:
            text = (x.get("task_id", "") + "\n" + (x.get("completion") or "")).lower()
            nominal = "@" not in x.get("task_id", "") or request.query_params.get("variants") == "1"
            return nominal and (not status or x.get("status") == status) and (not search or search in text)

        shown = [x for x in rows if matches(x)]
        statuses = sorted({x.get("status", "") for x in rows})
        return page("eval_set.html", request, run=r, e=found[0], rows=shown, total=len(rows), statuses=statuses,
                    status=status, search=search)  # fmt: skip

    def eval_problem(request: Request) -> Response:
        r = run_of(request)
        bench, task = request.path_params["benchmark"], request.path_params["task_id"]
        answers = []
        for e in run_info.eval_sets(r.path):
            if e.benchmark == bench:
                answers += [(e.model, x) for x in run_info.eval_rows(e.path) if x.get("task_id") == task]
        if not answers:
            raise HTTPException(404, f"no results for {task!r}")
        perturbed = _perturbed(r.path, bench, task)
        return page("eval_problem.html", request, run=r, bench=bench, task=task, answers=answers,
                    problem=evidence.problems().get(task), perturbed=perturbed)  # fmt: skip

    def figure(request: Request) -> Response:
        r = run_of(request)
        name = request.path_params["name"]
        if name not in run_info.figures(r.path):  # only a listed file: no path is built from the request
            raise HTTPException(404, "no such figure")
        return FileResponse(r.path / "figures" / name, media_type="image/png")

    def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return page("error.html", request, http_status=exc.status_code, detail=exc.detail)

    routes = [
        Route("/", home),
        Route("/static/style.css", stylesheet),
        Route("/{run:str}/", overview),
        Route("/{run:str}/records/{table:str}", records),
        Route("/{run:str}/records/{table:str}/{id:str}", record),
        Route("/{run:str}/pair/{id:str}/{task_id:path}", pair),
        Route("/{run:str}/mutants/{id:str}", mutants),
        Route("/{run:str}/eval", evals),
        Route("/{run:str}/eval/{model:str}/{benchmark:str}", eval_set),
        Route("/{run:str}/eval/{model:str}/{benchmark:str}/{task_id:path}", eval_problem),
        Route("/{run:str}/figures/{name:str}", figure),
    ]
    # The handlers are plain functions: Starlette runs them in its thread pool, so a slow query (a search over a
    # large run) or a mutant run does not hold up other pages.
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found})


def surviving_mutants(run_dir: Path, row: dict[str, Any]) -> dict[str, Any]:
    """The exercise's tests run again against its mutants, as the exercises stage ran them (the run's settings,
    the solution's own seed: the same mutants), in the sandbox: the score and the survivors' diffs."""
    from phi1.config import load_config
    from phi1.errors import Phi1Error
    from phi1.sandbox import Limits, Sandbox
    from phi1.synth.exercises import scoring
    from phi1.synth.verify import check_exercise

    try:
        cfg = load_config(run_dir / "config.yaml")
    except Phi1Error as e:
        return {"problem": f"config.yaml: {e}"}
    settings = scoring(cfg.synth)
    if settings is None:
        return {"problem": "this run scored no tests (synth.max_mutants is 0)"}
    prompt = row.get("prompt") or ""
    try:
        with Sandbox(workers=1) as sandbox:
            check = check_exercise(sandbox, row["text"], row.get("tests") or "", prompt.count("\n") + 1, settings,
                                   Limits(timeout_s=cfg.synth.verify_timeout_s))  # fmt: skip
    except Phi1Error as e:
        return {"problem": str(e)}
    if check.score is None:
        return {"problem": f"the exercise did not pass its tests now: {check.status} {check.problem}"}
    return {"score": check.score}


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _query(request: Request, columns: dict[str, str]) -> Query:
    """The page request from the URL: only the table's own columns are taken."""
    qp = request.query_params
    equals = {k[2:]: v for k, v in qp.items() if k.startswith("f.") and k[2:] in columns and v != ""}
    ranges = {c: (_number(qp.get(f"min.{c}")), _number(qp.get(f"max.{c}"))) for c in columns}
    try:
        offset = max(0, int(qp.get("offset", "0")))
    except ValueError:
        offset = 0
    return Query(equals, ranges, qp.get("q", "").strip(), qp.get("order", ""), qp.get("desc") == "1", offset)


def _perturbed(run_dir: Path, bench: str, task: str) -> list[dict[str, Any]]:
    """The prompt-style variants of a problem that `evaluate.perturb` ran (task ids `<task>@...`), each model's
    verdict on each, with the variant's prompt from `perturbed/<category>.jsonl`."""
    out = []
    for e in run_info.eval_sets(run_dir):
        if e.benchmark != bench:
            continue
        prompts: dict[str, dict[str, Any]] = {}
        for path in sorted((e.path / "perturbed").glob("*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                prompts[str(row.get("phi1_task_id", row.get("task_id")))] = row
        for x in run_info.eval_rows(e.path):
            tid = str(x.get("task_id", ""))
            if "@" in tid and tid.split("@")[0] == task:
                variant = prompts.get(tid, {})
                prompt = variant.get("prompt", variant.get("text"))
                out.append({"model": e.model, "variant": tid, "category": variant.get("category", ""),
                            "perturbation": variant.get("perturbation", ""), "prompt": prompt, **x})  # fmt: skip
    return out


def _compare(a: Run, b: Run) -> dict[str, Any]:
    """Two runs' counts side by side and, per model and benchmark, the problems that flipped from A to B."""
    counts = []
    for name in BY_NAME:
        na, nb = a.tables.count(name), b.tables.count(name)
        if na or nb:
            counts.append((name, na, nb))
    reasons = sorted(
        {str(v) for r in (a, b) for v, _ in (r.tables.facet("removed", "reason") if r.tables.table("removed") else [])}
    )
    removed = [(reason, a.tables.count("removed", "reason", reason), b.tables.count("removed", "reason", reason))
               for reason in reasons]  # fmt: skip
    flipped = []
    sets_b = {(e.model, e.benchmark): e for e in run_info.eval_sets(b.path)}
    for ea in run_info.eval_sets(a.path):
        eb = sets_b.get((ea.model, ea.benchmark))
        if eb is None:
            continue
        # The evaluation stage's own paired comparison, over the nominal problems (not prompt-style variants).
        pa, pb = ({t: ok for t, ok in flips.passed(e.path / "results.jsonl").items() if "@" not in t} for e in (ea, eb))
        c = flips.compare(pa, pb)
        flipped.append({"model": ea.model, "benchmark": ea.benchmark, "a": c["base_passed"], "b": c["finetuned_passed"],
                        "n": c["problems"], "up": c["to_pass"], "down": c["to_fail"]})  # fmt: skip
    return {"counts": counts, "removed": removed, "flips": flipped}
