"""Verification metrics: k-fold accuracy (LFW protocol), TAR at FAR, AUC, and the LFW pairs format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepipe.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Pair:
    left: str
    right: str
    same: bool
    fold: int


def read_lfw_pairs(path: Path) -> list[Pair]:
    """Parse LFW ``pairs.txt``: header ``folds<TAB>n``, then per fold n same and n different lines."""
    lines = path.read_text().split("\n")
    try:
        folds, per = (int(x) for x in lines[0].split())
    except ValueError as exc:
        raise InvalidInput(f"{path}: first line must be '<folds> <pairs per half-fold>'") from exc

    def img(name: str, idx: str) -> str:
        return f"{name}/{name}_{int(idx):04d}.jpg"

    pairs = []
    for i, line in enumerate(x for x in lines[1:] if x.strip()):
        parts = line.split()
        fold, same = i // (2 * per), len(parts) == 3
        if same:
            pairs.append(Pair(img(parts[0], parts[1]), img(parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(img(parts[0], parts[1]), img(parts[2], parts[3]), False, fold))
        else:
            raise InvalidInput(f"{path}: line {i + 2} has {len(parts)} fields (expected 3 or 4)")
    if len(pairs) != folds * 2 * per:
        raise InvalidInput(f"{path}: {len(pairs)} pairs, header promises {folds * 2 * per}")
    return pairs


def _accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return float(((scores >= threshold) == labels).mean())


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    candidates = np.unique(scores)
    mids = np.concatenate(
        [[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6]]
    )
    accs = [_accuracy(scores, labels, t) for t in mids]
    return float(mids[int(np.argmax(accs))])


@dataclass(frozen=True, slots=True)
class KFold:
    mean: float
    std: float
    thresholds: list[float]
    fold_accuracy: list[float]


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> KFold:
    """LFW protocol: per fold, the threshold that is best on the other folds, accuracy on this one
    (with a single fold there are no other folds: the threshold is chosen on it, optimistically)."""
    accs, ths = [], []
    single = len(np.unique(folds)) == 1
    for f in np.unique(folds):
        train, test = (folds == f) if single else (folds != f), folds == f
        t = best_threshold(scores[train], labels[train])
        ths.append(t)
        accs.append(_accuracy(scores[test], labels[test], t))
    return KFold(float(np.mean(accs)), float(np.std(accs)), ths, accs)


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) where the impostor acceptance rate is at most ``far``."""
    impostors = np.sort(scores[~labels])[::-1]
    k = int(np.floor(far * len(impostors)))
    threshold = float(impostors[k]) + 1e-9 if k < len(impostors) else float(impostors[-1])
    return float((scores[labels] >= threshold).mean()), threshold


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U)."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))
