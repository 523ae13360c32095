"""Keypoint results -> the ten COCO numbers (pycocotools COCOeval, silenced), and OKS per prediction/person pair."""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrpose_cli.core.oks import mean_keypoint_similarity, oks_blocks, oks_matrix
from hrpose_cli.data.coco import CocoKeypoints, scored_person

STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


class KeypointEval(COCOeval):
    """COCOeval with computeOks as category_oks (the same OKS to the bit, for many images in one pass) and
    evaluateImg as match_images (the same greedy matching, for every image of an area range at once).

    pycocotools computes each (prediction, person) pair in a Python loop, and matches each image, area range and
    OKS threshold in three nested ones. On 8,062 persons of coco-real train x58 (2 CPU cores, cProfile) the first
    loop took 1.2 of coco_stats' 3.0 s; with it vectorised per image the second took 2.0 of 2.7 s; with both
    batched and the results loaded at once (keypoint_results), coco_stats takes 0.58-0.69 s. The error analysis
    re-matches every fixed version of the detections. Accumulating and summarising stay pycocotools' own.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ranked: dict[tuple[int, int], list[RankedImage]] = {}
        self._oks: dict[int, dict[int, np.ndarray]] = {}
        self._tables: dict[tuple[int, int], ImageTable] = {}
        self._matched: dict[tuple, dict[int, dict]] = {}

    def evaluate(self) -> None:
        for cache in (self._ranked, self._oks, self._tables, self._matched):  # made again from this evaluation
            cache.clear()
        super().evaluate()

    def ranked(self, catId: int, max_dets: int) -> list[RankedImage]:
        """ranked_images, made once for the OKS and the matching."""
        if (catId, max_dets) not in self._ranked:
            self._ranked[catId, max_dets] = ranked_images(self, catId, max_dets)
        return self._ranked[catId, max_dets]

    def evaluateImg(self, imgId: int, catId: int, aRng: list[float], maxDet: int) -> dict | None:
        """pycocotools' record of one image (None without persons and detections), from the batch of its
        category and area range, matched at the first image asked for."""
        key = (catId, float(aRng[0]), float(aRng[1]), maxDet)
        if key not in self._matched:
            if (catId, maxDet) not in self._tables:
                self._tables[catId, maxDet] = ImageTable.build(self.ranked(catId, maxDet), self.ious, catId)
            self._matched[key] = match_images(self._tables[catId, maxDet], self.params.iouThrs, catId, aRng, maxDet)
        return self._matched[key].get(imgId)

    def computeOks(self, imgId: int, catId: int) -> np.ndarray | list:
        """pycocotools' OKS of one image (its detections best score first, at most maxDets[-1]; [] without
        persons or detections), from its category's batch, computed at the first image asked for."""
        if catId not in self._oks:
            self._oks[catId] = category_oks(self.ranked(catId, self.params.maxDets[-1]), self.params.kpt_oks_sigmas)
        return self._oks[catId].get(imgId, [])


RankedImage = tuple[int, list[dict], list[dict]]  # image id, its persons (gts), its detections best score first


def ranked_images(evaluation: COCOeval, catId: int, max_dets: int) -> list[RankedImage]:
    """Every image of evaluation.params.imgIds with persons or detections of the category, its detections sorted
    as pycocotools sorts them (best score first, stable, as np.argsort(-score, kind="mergesort")) and cut to
    ``max_dets``."""
    ranked = []
    for image_id in evaluation.params.imgIds:
        gts, dts = evaluation._gts[image_id, catId], evaluation._dts[image_id, catId]
        if gts or dts:
            ranked.append((image_id, gts, sorted(dts, key=lambda x: -x["score"])[:max_dets]))
    return ranked


def category_oks(images: list[RankedImage], sigmas: np.ndarray, max_pairs: int = 100_000) -> dict[int, np.ndarray]:
    """COCOeval.computeOks of every image with both persons and detections, by core.oks.oks_blocks over as many
    images at a time as keep (detection, person) pairs under ``max_pairs`` (memory)."""
    result: dict[int, np.ndarray] = {}

    def score(chunk: list[RankedImage]) -> None:
        gts = [g for _, image_gts, _ in chunk for g in image_gts]
        dts = [d for _, _, image_dts in chunk for d in image_dts]
        blocks = oks_blocks(np.array([g["keypoints"] for g in gts], dtype=np.float64),
                            np.array([g["area"] for g in gts], dtype=np.float64),
                            np.array([g["bbox"] for g in gts], dtype=np.float64),
                            [len(image_gts) for _, image_gts, _ in chunk],
                            np.array([d["keypoints"] for d in dts], dtype=np.float64),
                            [len(image_dts) for _, _, image_dts in chunk], sigmas)
        result.update((image_id, block) for (image_id, _, _), block in zip(chunk, blocks))

    chunk, pairs = [], 0
    for image in (image for image in images if image[1] and image[2]):
        if chunk and pairs + len(image[1]) * len(image[2]) > max_pairs:
            score(chunk)
            chunk, pairs = [], 0
        chunk.append(image)
        pairs += len(image[1]) * len(image[2])
    if chunk:
        score(chunk)
    return result


@dataclass
class ImageTable:
    """One category's persons and detections (best score first, at most maxDet) of every image that has either,
    padded into arrays, with their OKS in annotation order: what match_images needs for each area range."""

    image_ids: list[int]
    persons: np.ndarray  # (n,) how many persons (gts) each image has
    detections: np.ndarray  # (n,) how many detections
    gt_id: np.ndarray  # (n, g) int64
    gt_area: np.ndarray
    gt_ignore: np.ndarray  # bool: COCO's own ignore flag (crowds, persons without labelled joints)
    crowd: np.ndarray  # bool
    dt_id: np.ndarray  # (n, d) int64
    dt_area: np.ndarray
    dt_score: np.ndarray
    oks: np.ndarray  # (n, d, g), -inf where padded

    @staticmethod
    def build(ranked: list[RankedImage], ious: dict, catId: int) -> "ImageTable":
        """The table of ranked_images, with COCOeval's ``ious`` of the category (category_oks)."""
        images = sorted(ranked, key=lambda image: -len(image[2]))  # most detections first: each rank's images lead
        n = len(images)
        g_max = max((len(gts) for _, gts, _ in images), default=0)
        d_max = max((len(dts) for _, _, dts in images), default=0)
        table = ImageTable([i for i, _, _ in images], np.zeros(n, np.int64), np.zeros(n, np.int64),
                           np.zeros((n, g_max), np.int64), np.zeros((n, g_max)), np.zeros((n, g_max), bool),
                           np.zeros((n, g_max), bool), np.zeros((n, d_max), np.int64), np.zeros((n, d_max)),
                           np.zeros((n, d_max)), np.full((n, d_max, g_max), -np.inf))
        for i, (image_id, gts, dts) in enumerate(images):
            g, d = len(gts), len(dts)
            table.persons[i], table.detections[i] = g, d
            if g:
                table.gt_id[i, :g] = [x["id"] for x in gts]
                table.gt_area[i, :g] = [x["area"] for x in gts]
                table.gt_ignore[i, :g] = [bool(x["ignore"]) for x in gts]
                table.crowd[i, :g] = [bool(x["iscrowd"]) for x in gts]
            if d:
                table.dt_id[i, :d] = [x["id"] for x in dts]
                table.dt_area[i, :d] = [x["area"] for x in dts]
                table.dt_score[i, :d] = [x["score"] for x in dts]
            if g and d:
                table.oks[i, :d, :g] = ious[image_id, catId][:d]
        return table


def match_images(table: ImageTable, thresholds: np.ndarray, catId: int, aRng: list[float],
                 maxDet: int) -> dict[int, dict]:
    """COCOeval.evaluateImg of every image in ``table``: the same records, value for value.

    pycocotools matches each detection (best score first) to the available person of highest OKS at least the
    threshold (the last of equals), and to a person it ignores only when no other qualifies; crowds stay
    available. Here that greedy walk steps through the detections' ranks once, for all images and thresholds.
    """
    n, g_max = table.gt_id.shape
    d_max, t = table.dt_id.shape[1], len(thresholds)
    ignore = table.gt_ignore | (table.gt_area < aRng[0]) | (table.gt_area > aRng[1])
    padded = np.arange(g_max)[None, :] >= table.persons[:, None]
    order = np.argsort(np.where(padded, 2, ignore.astype(np.int64)), axis=1, kind="stable")  # ignored last
    ignore, crowd, gt_id = (np.take_along_axis(a, order, axis=1) for a in (ignore, table.crowd, table.gt_id))
    oks = np.take_along_axis(table.oks, order[:, None, :], axis=2)
    thr = np.minimum(np.asarray(thresholds, dtype=np.float64), 1 - 1e-10)

    gt_match = np.zeros((n, t, g_max))
    dt_match = np.zeros((n, t, d_max))
    dt_ignored = np.zeros((n, t, d_max), dtype=bool)
    for d in range(d_max if g_max else 0):  # without persons nothing matches
        k = int(np.count_nonzero(table.detections > d))  # the images with a d-th detection lead the table
        rank_oks = oks[:k, None, d, :]
        qualifies = (rank_oks >= thr[None, :, None]) & ((gt_match[:k] == 0) | crowd[:k, None, :])
        chosen = np.full((k, t), -1)
        for group in (~ignore[:k], ignore[:k]):  # persons it does not ignore first; the ignored if none qualifies
            candidates = qualifies & group[:, None, :] & (chosen < 0)[..., None]
            value = np.where(candidates, rank_oks, -np.inf)
            best = candidates & (value == value.max(axis=-1, keepdims=True))
            chosen = np.where(best.any(axis=-1), g_max - 1 - np.argmax(best[..., ::-1], axis=-1), chosen)
        hit = chosen >= 0
        m = np.where(hit, chosen, 0)
        rows = np.arange(k)[:, None]
        dt_ignored[:k, :, d] = hit & ignore[rows, m]
        dt_match[:k, :, d] = np.where(hit, gt_id[rows, m], 0)
        image_index, threshold_index = np.nonzero(hit)
        gt_match[image_index, threshold_index, m[hit]] = table.dt_id[image_index, d]
    outside = (table.dt_area < aRng[0]) | (table.dt_area > aRng[1])
    dt_ignored |= (dt_match == 0) & outside[:, None, :]

    records = {}
    for i, image_id in enumerate(table.image_ids):
        g, d = int(table.persons[i]), int(table.detections[i])
        records[image_id] = {
            "image_id": image_id,
            "category_id": catId,
            "aRng": aRng,
            "maxDet": maxDet,
            "dtIds": table.dt_id[i, :d].tolist(),
            "gtIds": gt_id[i, :g].tolist(),
            "dtMatches": dt_match[i, :, :d],
            "gtMatches": gt_match[i, :, :g],
            "dtScores": table.dt_score[i, :d].tolist(),
            "gtIgnore": ignore[i, :g].astype(np.int64) if g else np.array([]),
            "dtIgnore": dt_ignored[i, :, :d],
        }
    return records


def keypoint_results(coco: COCO, entries: list[dict]) -> COCO:
    """coco.loadRes(entries) for keypoint results, with each result's box (its keypoints' extent), area and id
    computed for all results at once: the same values, written into the entries as loadRes writes them."""
    if not entries:
        return coco.loadRes(entries)
    image_ids = {entry["image_id"] for entry in entries}
    assert image_ids <= set(coco.getImgIds()), "Results do not correspond to current coco set"
    keypoints = np.array([entry["keypoints"] for entry in entries], dtype=np.float64)
    x, y = keypoints[:, 0::3], keypoints[:, 1::3]
    x0, x1, y0, y1 = x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1)
    area = (x1 - x0) * (y1 - y0)
    for index, entry in enumerate(entries):
        entry["area"] = area[index]
        entry["id"] = index + 1
        entry["bbox"] = [x0[index], y0[index], x1[index] - x0[index], y1[index] - y0[index]]
    results = COCO()
    results.dataset["info"] = copy.deepcopy(coco.dataset.get("info", {}))
    results.dataset["images"] = list(coco.dataset["images"])
    results.dataset["categories"] = copy.deepcopy(coco.dataset["categories"])
    results.dataset["annotations"] = entries
    results.createIndex()
    return results


def coco_stats(dataset: CocoKeypoints, results: list[dict], sigmas: np.ndarray | None = None) -> dict[str, float]:
    """COCOeval(iouType='keypoints').stats for checked results (see data.coco.load_results), keyed by STAT_NAMES.

    The entries are copied first (one level deep: keypoint_results, as pycocotools' loadRes, writes area, id and
    bbox into them and reads the rest). sigmas replaces COCO's per-joint OKS sigmas (needed for keypoint sets
    other than COCO-17); their count must match the dataset's joints.
    """
    sigmas = dataset.oks_sigmas(sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        detections = keypoint_results(dataset.coco, [dict(entry) for entry in results])
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
