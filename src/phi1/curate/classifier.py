"""The educational-value classifier: a random forest on embeddings of the annotated sample (the paper's
choice), or a logistic / regression variant. Metrics are measured on a held-out split; the model that
scores the corpus is then refit on every annotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

from phi1.config import CurateConfig
from phi1.curate.embed import embeddings_of
from phi1.errors import Phi1Error
from phi1.rundir import Stage, as_stage, read_table


def make_model(cfg: CurateConfig, seed: int) -> BaseEstimator:
    if cfg.classifier == "random_forest":
        return RandomForestClassifier(
            n_estimators=cfg.n_estimators, random_state=seed, n_jobs=-1, class_weight="balanced_subsample"
        )
    if cfg.classifier == "logistic":
        return LogisticRegression(max_iter=2000, class_weight="balanced")
    return RandomForestRegressor(n_estimators=cfg.n_estimators, random_state=seed, n_jobs=-1)


def edu_probability(model: BaseEstimator, x: np.ndarray, cfg: CurateConfig) -> np.ndarray:
    """The probability that a file is educational (for regression: a predicted 0-5 score mapped so that
    the threshold score lands at 0.5)."""
    if cfg.classifier == "regression":
        scores = model.predict(x)
        return np.clip(0.5 + (scores - (cfg.score_threshold - 0.5)) / 5.0, 0.0, 1.0)
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(x))


def training_data(run_dir: Path, cfg: CurateConfig) -> tuple:
    ann = read_table(run_dir / "annotations", ["id", "score", "valid"]).to_pylist()
    vector_of = embeddings_of(run_dir, {a["id"] for a in ann if a["valid"]})
    usable = [a for a in ann if a["valid"] and a["id"] in vector_of]
    if len(usable) < 10:
        raise Phi1Error(f"{run_dir / 'annotations'}: only {len(usable)} valid annotations; annotate more files")
    x = np.stack([vector_of[a["id"]] for a in usable])
    scores = np.array([a["score"] for a in usable])
    return x, scores, (scores >= cfg.score_threshold).astype(int)


def train(
    run_dir: Path,
    cfg: CurateConfig,
    key: str | Stage,
    seed: int,
    force: bool = False,
) -> dict[str, Any]:
    stage = as_stage(run_dir, "classifier", key)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=True)
    x, scores, labels = training_data(run_dir, cfg)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        raise Phi1Error(
            f"the teacher rated {counts[1]} of {len(labels)} files >= {cfg.score_threshold} (curate.score_threshold): "
            "both classes need at least 2 files; change the threshold or annotate more"
        )
    target = scores if cfg.classifier == "regression" else labels
    with stage.timed("fit_s"):
        x_tr, x_te, y_tr, _y_te, l_tr, l_te = train_test_split(
            x, target, labels, test_size=cfg.test_fraction, random_state=seed, stratify=labels
        )
        held_out = make_model(cfg, seed).fit(x_tr, y_tr)
        proba = edu_probability(held_out, x_te, cfg)
        predicted = (proba >= cfg.decision_threshold).astype(int)
        metrics = {
            "n_train": len(l_tr),
            "n_test": len(l_te),
            "positive_rate": round(float(labels.mean()), 4),
            "accuracy": round(float(accuracy_score(l_te, predicted)), 4),
            "macro_f1": round(float(f1_score(l_te, predicted, average="macro")), 4),
            "roc_auc": round(float(roc_auc_score(l_te, proba)), 4) if len(set(l_te)) == 2 else None,
            "confusion_matrix": confusion_matrix(l_te, predicted, labels=[0, 1]).tolist(),
            "decision_threshold": cfg.decision_threshold,
        }
        final = make_model(cfg, seed).fit(x, target)  # every annotation for the model that scores the corpus
    joblib.dump(final, stage.path / "model.joblib")
    (stage.path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return stage.finish(
        metrics=metrics, counts={"annotations": len(labels), "educational": int(counts[1])}, model=cfg.classifier
    )


def load_model(run_dir: Path) -> BaseEstimator:
    path = run_dir / "classifier" / "model.joblib"
    if not path.exists():
        raise Phi1Error(f"{path}: no classifier (has the classifier step run?)")
    return joblib.load(path)
