"""`hrpose eval --analyze`: why the AP is what it is (Ronchi & Perona, ICCV 2017; ../shared/ERROR_ANALYSIS.md).

Matching is pycocotools' (COCOeval.evaluate, its per-image matching batched by evaluator.match_images into the
same records, so every fixed AP comes from the same greedy matcher as the eval table); the per-keypoint labels,
corrections and optimal scores are core.keypoint_errors. Two deliberate choices: area "all" is pycocotools'
(every size, so the analysis' AP equals the table's AP75; coco-analyze's "all" leaves out small people), and the
correction distance follows the stated semantics by default.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from hrpose_cli.core.keypoint_errors import (
    DEFAULT_CONVENTION, INVERSION, JITTER, LABELS, MISS, SWAP, UNLABELLED, corrected_keypoints,
    label_keypoints, soft_nms_scores,
)
from hrpose_cli.core.oks import oks_matrix
from hrpose_cli.data.coco import PERSON_CATEGORY, CocoKeypoints
from hrpose_cli.engine.evaluator import KeypointEval, keypoint_results

AREAS: dict[str, tuple[float, float]] = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MATCH_OKS = 0.1  # detections matched to a GT at this OKS get per-keypoint labels
REPORT_OKS = 0.75
CURVE_OKS = (0.5, 0.75, 0.95)  # the paper's figure 2 (area all); every other number is at REPORT_OKS
MAX_DETS = 20
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
ERROR_TYPES = ("miss", "swap", "inversion", "jitter")  # the cumulative order of the progressive curves
STAGES = ("original", *ERROR_TYPES, "score", "background_fp", "false_negatives")
FIXED = (*ERROR_TYPES, "score", "background_fp", "false_negatives")  # the keys of ap_fixed
_CODE = {name: LABELS.index(name) for name in ERROR_TYPES}


@dataclass
class Candidate:
    """A detection matched to a GT with labelled joints at OKS 0.1: its labels and what they were measured on."""

    index: int  # position in the analysed (top-20 per image) results
    image_id: int
    ann_id: int
    score: float
    oks: float
    labels: np.ndarray  # (J,) LABELS codes, UNLABELLED where the GT lacks the joint
    fixed: np.ndarray  # (J, 3) the keypoints with every error corrected (section 4.1)


@dataclass
class ErrorAnalysis:
    """Everything `eval --analyze` prints, draws and writes. AP values are -1 where an area has no person."""

    joint_names: tuple[str, ...]
    convention: str
    detections: int
    candidates: list[Candidate]
    zero_keypoint_matches: int
    ap_fixed: dict[str, dict[str, float]]  # area -> FIXED type -> AP at OKS 0.75 after fixing it alone
    progressive: dict[str, dict[str, float]]  # area -> STAGES -> AP at OKS 0.75, cumulative
    curves: dict[float, dict[str, tuple[float, np.ndarray]]]  # OKS -> STAGES -> (AP, 101 precisions), area all
    keypoints: np.ndarray = field(repr=False)  # (D, J, 3) the analysed detections
    count_matrix: np.ndarray = field(repr=False)  # (J, 5) labelled joints per LABELS code

    @property
    def counts(self) -> dict[str, int]:
        return {name: int(self.count_matrix[:, k].sum()) for k, name in enumerate(LABELS)}

    @property
    def per_joint(self) -> dict[str, dict[str, int]]:
        return {joint: {name: int(row[k]) for k, name in enumerate(LABELS)}
                for joint, row in zip(self.joint_names, self.count_matrix)}

    def worst(self, limit: int) -> list[Candidate]:
        """The analysed detections with the lowest OKS with their GT (most errors first among equals)."""
        errors = [JITTER, INVERSION, SWAP, MISS]
        return sorted(self.candidates, key=lambda c: (c.oks, -int(np.isin(c.labels, errors).sum())))[:limit]

    def to_json(self) -> dict:
        """The "analysis" object of `eval --json`, with exactly the keys of the CLI contract."""
        return {
            "counts": self.counts,
            "per_joint": self.per_joint,
            "ap_fixed": dict(self.ap_fixed["all"]),
            "ap": self.progressive["all"]["original"],
            "convention": self.convention,
        }


def top_detections(results: list[dict], max_dets: int = MAX_DETS) -> list[dict]:
    """Each image's max_dets highest-scoring results (file order kept), as coco-analyze loads them.

    The optimal scores would otherwise lift a 21st detection into an image's evaluated top 20.
    """
    by_image: dict[int, list[int]] = {}
    for index, entry in enumerate(results):
        by_image.setdefault(entry["image_id"], []).append(index)
    keep = set()
    for members in by_image.values():
        order = np.argsort([-results[i]["score"] for i in members], kind="mergesort")
        keep.update(members[i] for i in order[:max_dets])
    return [entry for index, entry in enumerate(results) if index in keep]


def _evaluate(dataset: CocoKeypoints, image_ids: list[int], keypoints: np.ndarray, scores: np.ndarray,
              sigmas: np.ndarray, area: tuple[float, float], thresholds: tuple[float, ...]) -> list[dict]:
    """pycocotools' per-image matching (evalImgs) of these detections; their ids are index + 1."""
    flat = keypoints.reshape(len(keypoints), -1)
    entries = [{"image_id": i, "category_id": PERSON_CATEGORY, "keypoints": k, "score": float(s)}
               for i, k, s in zip(image_ids, flat, scores)]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = KeypointEval(dataset.coco, keypoint_results(dataset.coco, entries), iouType="keypoints")
        evaluation.params.kpt_oks_sigmas = sigmas
        evaluation.params.iouThrs = np.asarray(thresholds, dtype=np.float64)
        evaluation.params.areaRng = [list(area)]
        evaluation.params.areaRngLbl = ["analysed"]
        evaluation.params.maxDets = [MAX_DETS]
        evaluation.evaluate()
    return [e for e in evaluation.evalImgs if e is not None]


def precision_curve(evals: list[dict], t: int, drop_fp: bool = False, drop_fn: bool = False
                    ) -> tuple[float, np.ndarray]:
    """AP and the 101 interpolated precisions at threshold index t, as COCOeval.accumulate computes them.

    drop_fp ignores the detections unmatched at t (background false positives); drop_fn ignores the GTs
    unmatched at t (false negatives). (-1, zeros) when no GT counts.
    """
    if not evals:
        return -1.0, np.zeros(len(RECALL_POINTS))
    scores = np.concatenate([np.asarray(e["dtScores"], dtype=np.float64) for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e["dtMatches"][t] for e in evals])[order] > 0
    ignored = np.concatenate([e["dtIgnore"][t] for e in evals])[order].astype(bool)
    gt_ignored = np.concatenate([e["gtIgnore"] for e in evals]).astype(bool)
    gt_matched = np.concatenate([e["gtMatches"][t] for e in evals]) > 0
    if drop_fp:
        ignored |= ~matched
    people = int((~gt_ignored & (gt_matched if drop_fn else True)).sum())
    if people == 0:
        return -1.0, np.zeros(len(RECALL_POINTS))
    tp = np.cumsum(matched & ~ignored).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored).astype(np.float64)
    recall = tp / people
    precision = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    curve = np.zeros(len(RECALL_POINTS))
    inside = at < len(precision)
    curve[inside] = precision[at[inside]]
    return float(curve.mean()), curve


class _Detections:
    """The analysed detections of one dataset, with the GT lookups the labelling and rescoring need."""

    def __init__(self, dataset: CocoKeypoints, results: list[dict], sigmas: np.ndarray) -> None:
        self.dataset = dataset
        self.sigmas = sigmas
        self.joints = dataset.num_joints
        self.image_ids = [int(r["image_id"]) for r in results]
        self.keypoints = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(-1, self.joints, 3)
        self.scores = np.array([r["score"] for r in results], dtype=np.float64)
        self.flip = dataset.schema.flip_permutation()

    def image_annotations(self, image_id: int) -> list[dict]:
        """Every person annotation of an image in file order (crowd and empty ones too: swap targets)."""
        return [a for a in self.dataset.coco.imgToAnns.get(image_id, []) if a["category_id"] == PERSON_CATEGORY]

    def evaluate(self, keypoints: np.ndarray, scores: np.ndarray, area: tuple[float, float],
                 thresholds: tuple[float, ...] = (REPORT_OKS,)) -> list[dict]:
        return _evaluate(self.dataset, self.image_ids, keypoints, scores, self.sigmas, area, thresholds)

    def label(self, area: tuple[float, float], convention: str) -> tuple[list[Candidate], int]:
        """Match at OKS 0.1 in this area range and label every matched detection's joints (section 3-4)."""
        candidates, zero = [], 0
        for e in self.evaluate(self.keypoints, self.scores, area, (MATCH_OKS,)):
            for det_id, gt_id in zip(e["dtIds"], e["dtMatches"][0]):
                if gt_id <= 0:
                    continue
                gt = self.dataset.coco.anns[int(gt_id)]
                if gt["num_keypoints"] == 0:
                    zero += 1
                    continue
                anns = self.image_annotations(e["image_id"])
                own = next(k for k, a in enumerate(anns) if a["id"] == gt["id"])
                gts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), self.joints, 3)
                areas = np.array([a["area"] for a in anns], dtype=np.float64)
                index = det_id - 1
                labels, ksmax = label_keypoints(self.keypoints[index], gts, areas, own, self.sigmas, self.flip)
                oks = self._own_oks(index, gts[own], areas[own])
                fixed = corrected_keypoints(self.keypoints[index], labels, ksmax, gts[own], areas[own], self.sigmas,
                                            set(_CODE.values()), convention)
                candidates.append(Candidate(index, e["image_id"], int(gt["id"]), float(self.scores[index]), oks,
                                            labels, fixed))
        return candidates, zero

    def _own_oks(self, index: int, gt: np.ndarray, area: float) -> float:
        box = np.zeros((1, 4))
        return float(oks_matrix(gt[None], np.array([area]), box, self.keypoints[index][None], self.sigmas)[0, 0])

    def corrected(self, candidates: list[Candidate], fix: set[int]) -> np.ndarray:
        """All detections' keypoints with the joints of the error types ``fix`` of the candidates corrected."""
        out = self.keypoints.copy()
        if candidates:
            rows = np.array([c.index for c in candidates])
            move = np.isin(np.stack([c.labels for c in candidates]), sorted(fix))
            out[rows] = np.where(move[..., None], np.stack([c.fixed for c in candidates]), out[rows])
        return out

    def optimal_scores(self, keypoints: np.ndarray, area: tuple[float, float]) -> np.ndarray:
        """Each detection's best OKS with a GT COCOeval counts in this area, then soft-NMS per image (7.1)."""
        scores = np.zeros(len(keypoints))
        by_image: dict[int, list[int]] = {}
        for index, image_id in enumerate(self.image_ids):
            by_image.setdefault(image_id, []).append(index)
        for image_id, members in by_image.items():
            anns = [a for a in self.image_annotations(image_id) if not a["iscrowd"] and a["num_keypoints"] > 0
                    and area[0] <= a["area"] <= area[1]]
            if anns:
                gts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), self.joints, 3)
                best = oks_matrix(gts, np.array([a["area"] for a in anns]), np.array([a["bbox"] for a in anns]),
                                  keypoints[members], self.sigmas).max(axis=1)
            else:
                best = np.zeros(len(members))
            scores[members] = soft_nms_scores(keypoints[members], best, self.sigmas)
        return scores


def _analyze_area(dets: _Detections, name: str, area: tuple[float, float], convention: str) -> dict:
    """One area range: its labels, the progressive and isolated AP at OKS 0.75, and (area all) the curves."""
    thresholds = CURVE_OKS if name == "all" else (REPORT_OKS,)
    t75 = thresholds.index(REPORT_OKS)
    candidates, zero = dets.label(area, convention)
    stages = {"original": dets.evaluate(dets.keypoints, dets.scores, area, thresholds)}
    fixed: set[int] = set()
    for error in ERROR_TYPES:
        fixed.add(_CODE[error])
        stages[error] = dets.evaluate(dets.corrected(candidates, fixed), dets.scores, area, thresholds)
    all_fixed = dets.corrected(candidates, fixed)
    stages["score"] = dets.evaluate(all_fixed, dets.optimal_scores(all_fixed, area), area, thresholds)

    def stage_curves(t: int) -> dict[str, tuple[float, np.ndarray]]:
        found = {stage: precision_curve(stages[stage], t) for stage in STAGES[:6]}
        found["background_fp"] = precision_curve(stages["score"], t, drop_fp=True)
        found["false_negatives"] = precision_curve(stages["score"], t, drop_fp=True, drop_fn=True)
        return found

    progressive = {stage: ap for stage, (ap, _) in stage_curves(t75).items()}
    alone = {error: dets.evaluate(dets.corrected(candidates, {_CODE[error]}), dets.scores, area)
             for error in ERROR_TYPES[1:]}  # miss alone is the first progressive stage
    alone["score"] = dets.evaluate(dets.keypoints, dets.optimal_scores(dets.keypoints, area), area)
    ap_fixed = {"miss": progressive["miss"], **{key: precision_curve(evals, 0)[0] for key, evals in alone.items()},
                "background_fp": precision_curve(stages["original"], t75, drop_fp=True)[0],
                "false_negatives": precision_curve(stages["original"], t75, drop_fn=True)[0]}
    curves = {oks: stage_curves(t) for t, oks in enumerate(thresholds)} if name == "all" else {}
    return {"candidates": candidates, "zero": zero, "progressive": progressive, "ap_fixed": ap_fixed,
            "curves": curves}


def analyze(dataset: CocoKeypoints, results: list[dict], sigmas: np.ndarray | None = None,
            convention: str = DEFAULT_CONVENTION) -> ErrorAnalysis:
    """The full analysis of checked results (data.coco.load_results) against their annotations.

    Labels and corrections are redone per area range (the OKS-0.1 matching depends on which people are
    ignored); the counts, the worst people and the curves are those of area all.
    """
    dets = _Detections(dataset, top_detections(results), dataset.oks_sigmas(sigmas))
    per_area = {name: _analyze_area(dets, name, area, convention) for name, area in AREAS.items()}
    everyone = per_area["all"]
    count_matrix = np.zeros((dets.joints, len(LABELS)), dtype=np.int64)
    for c in everyone["candidates"]:
        for joint, label in enumerate(c.labels):
            if label != UNLABELLED:
                count_matrix[joint, label] += 1
    return ErrorAnalysis(dataset.keypoint_names, convention, len(dets.scores), everyone["candidates"],
                         everyone["zero"], {name: a["ap_fixed"] for name, a in per_area.items()},
                         {name: a["progressive"] for name, a in per_area.items()}, everyone["curves"],
                         dets.keypoints, count_matrix)
