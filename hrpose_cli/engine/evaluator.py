"""Keypoint results -> the ten COCO numbers (pycocotools COCOeval, silenced), and OKS per prediction/person pair."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
from pycocotools.cocoeval import COCOeval

from hrpose_cli.core.oks import mean_keypoint_similarity, oks_matrix
from hrpose_cli.data.coco import CocoKeypoints, scored_person

STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


class KeypointEval(COCOeval):
    """COCOeval with computeOks as core.oks.oks_matrix: the same OKS to the bit, vectorised over the predictions.

    pycocotools computes each (prediction, person) pair in a Python loop: on 8,062 persons of coco-real train x58
    that loop was 1.2 of the 3.0 s of coco_stats (cProfile, 2 CPU cores), and the error analysis re-matches every
    fixed version of the detections. Matching, accumulating and summarising stay pycocotools' own.
    """

    def computeOks(self, imgId: int, catId: int) -> np.ndarray | list:
        gts, dts = self._gts[imgId, catId], self._dts[imgId, catId]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: self.params.maxDets[-1]]
        if len(gts) == 0 or len(dts) == 0:
            return []
        joints = len(self.params.kpt_oks_sigmas)
        gt = np.array([g["keypoints"] for g in gts], dtype=np.float64).reshape(len(gts), joints, 3)
        pred = np.array([dts[i]["keypoints"] for i in order], dtype=np.float64).reshape(len(order), joints, 3)
        return oks_matrix(gt, np.array([g["area"] for g in gts]), np.array([g["bbox"] for g in gts]), pred,
                          self.params.kpt_oks_sigmas)


def coco_stats(dataset: CocoKeypoints, results: list[dict], sigmas: np.ndarray | None = None) -> dict[str, float]:
    """COCOeval(iouType='keypoints').stats for checked results (see data.coco.load_results), keyed by STAT_NAMES.

    The entries are copied first (one level deep: pycocotools' loadRes writes area, id and bbox into them and
    reads the rest). sigmas replaces COCO's per-joint OKS sigmas (needed for keypoint sets other than COCO-17);
    their count must match the dataset's joints.
    """
    sigmas = dataset.oks_sigmas(sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        detections = dataset.coco.loadRes([dict(entry) for entry in results])
        evaluation = KeypointEval(dataset.coco, detections, iouType="keypoints")
        evaluation.params.kpt_oks_sigmas = sigmas
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluation.stats)}


def person_box_stats(dataset: CocoKeypoints, detections: list[dict]) -> dict[str, float]:
    """The detector's person box AP: COCOeval(iouType='bbox') against every person box of the annotations
    (crowd regions ignored as COCO does), keyed like the keypoint numbers (APm/APl, ARm/ARl: small omitted)."""
    if not detections:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(dataset.coco, dataset.coco.loadRes([dict(entry) for entry in detections]), iouType="bbox")
        evaluation.params.catIds = [1]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    s = evaluation.stats  # AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl
    return dict(zip(STAT_NAMES, map(float, (s[0], s[1], s[2], s[4], s[5], s[8], 0.0, 0.0, s[10], s[11]))))


@dataclass
class OksPairs:
    """OKS of every prediction with every annotation of its image (and category), and a summary of them.

    pairs: {"image_id", "gt_id", "pred_index", "oks"} ordered by prediction, then annotation file order.
    best_oks: per person COCOeval scores (non-crowd, labelled joints), its best OKS over its image's predictions
    (0 when there is none). joint_similarity: per joint, the mean exp(-e) between each matched person and its best
    prediction, over the persons that label the joint (NaN when none does).
    """

    pairs: list[dict]
    images: int
    predictions: int
    best_oks: np.ndarray
    joint_similarity: np.ndarray


def oks_pairs(dataset: CocoKeypoints, results: list[dict], sigmas: np.ndarray | None = None) -> OksPairs:
    """Pair predictions with annotations per image as COCOeval does and compute each OKS as computeOks does."""
    sigmas = dataset.oks_sigmas(sigmas)
    joints = dataset.num_joints
    by_group: dict[tuple[int, int], list[int]] = {}
    for index, entry in enumerate(results):
        by_group.setdefault((entry["image_id"], entry["category_id"]), []).append(index)

    pairs: list[dict] = []
    best = {}
    matched_gt, matched_pred, matched_area = [], [], []
    for (image_id, category_id), members in by_group.items():
        anns = [a for a in dataset.coco.imgToAnns.get(image_id, []) if a["category_id"] == category_id]
        if not anns:
            continue
        gt = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), joints, 3)
        areas = np.array([a["area"] for a in anns], dtype=np.float64)
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)
        pred = np.array([results[i]["keypoints"] for i in members], dtype=np.float64).reshape(len(members), joints, 3)
        matrix = oks_matrix(gt, areas, boxes, pred, sigmas)
        for row, index in enumerate(members):
            pairs.extend(
                {"image_id": image_id, "gt_id": ann["id"], "pred_index": index, "oks": float(matrix[row, col])}
                for col, ann in enumerate(anns)
            )
        for col, ann in enumerate(anns):
            if scored_person(ann):
                row = int(np.argmax(matrix[:, col]))
                best[ann["id"]] = float(matrix[row, col])
                matched_gt.append(gt[col])
                matched_pred.append(pred[row])
                matched_area.append(areas[col])
    pairs.sort(key=lambda p: p["pred_index"])  # stable: annotation order within a prediction

    people = [a["id"] for a in dataset.coco.dataset["annotations"] if scored_person(a)]
    similarity = mean_keypoint_similarity(
        np.array(matched_gt).reshape(-1, joints, 3),
        np.array(matched_area),
        np.array(matched_pred).reshape(-1, joints, 3),
        sigmas,
    )
    return OksPairs(
        pairs=pairs,
        images=len({image_id for image_id, _ in by_group}),
        predictions=len(results),
        best_oks=np.array([best.get(ann_id, 0.0) for ann_id in people]),
        joint_similarity=similarity,
    )
