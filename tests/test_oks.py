"""OKS matrix against pycocotools' computeOks, OKS-NMS and rescoring against hand-checked examples."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrpose_cli.core.oks import mean_keypoint_similarity, oks_matrix, oks_nms, rescore
from hrpose_cli.core.schema import COCO17
OKS_SIGMAS = COCO17.oks_sigmas


def compute_oks(gts: list[dict], dts: list[dict], sigmas=None) -> np.ndarray:
    """pycocotools' computeOks on one image, the detections given in descending score order."""
    gt_set = {
        "images": [{"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"}],
        "annotations": [dict(g, id=i + 1, image_id=1, category_id=1, iscrowd=0) for i, g in enumerate(gts)],
        "categories": [{"id": 1, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_set
        coco.createIndex()
        dt = coco.loadRes([dict(d, image_id=1, category_id=1) for d in dts])
        evaluation = COCOeval(coco, dt, iouType="keypoints")
    evaluation.params.maxDets = [len(dts) + 1]
    if sigmas is not None:
        evaluation.params.kpt_oks_sigmas = sigmas
    evaluation._prepare()
    return np.asarray(evaluation.computeOks(1, 1))


def random_people(rng, n, labelled=True):
    k = np.zeros((n, 17, 3))
    k[..., 0] = rng.uniform(50, 600, (n, 17))
    k[..., 1] = rng.uniform(50, 400, (n, 17))
    k[..., 2] = rng.integers(0, 3, (n, 17)) if labelled else 0
    return k


def test_oks_matrix_equals_compute_oks_including_unlabelled_gt():
    rng = np.random.default_rng(1)
    gt = np.concatenate([random_people(rng, 4), random_people(rng, 2, labelled=False)])
    gt[-2:, :, :2] = 0  # an annotation without keypoints: its distance is to the enlarged box
    boxes = np.stack([rng.uniform(0, 300, len(gt)), rng.uniform(0, 200, len(gt)),
                      rng.uniform(20, 300, len(gt)), rng.uniform(20, 250, len(gt))], axis=1)
    areas = rng.uniform(500, 40000, len(gt))
    pred = np.concatenate([gt[:4] + rng.normal(0, 8, gt[:4].shape), random_people(rng, 5)])
    pred[..., 2] = rng.uniform(0, 1, pred.shape[:2])
    scores = -np.arange(len(pred), dtype=float)  # descending: computeOks keeps this order

    gts = [
        {"keypoints": g.reshape(-1).tolist(), "bbox": b.tolist(), "area": float(a),
         "num_keypoints": int((g[:, 2] > 0).sum())}
        for g, b, a in zip(gt, boxes, areas)
    ]
    dts = [{"keypoints": p.reshape(-1).tolist(), "score": float(s)} for p, s in zip(pred, scores)]
    for sigmas in (None, OKS_SIGMAS * 1.7):
        expected = compute_oks(gts, dts, sigmas)
        got = oks_matrix(gt, areas, boxes, pred, sigmas)
        assert got.shape == (len(pred), len(gt))
        assert np.array_equal(got, expected)  # to the bit: an OKS on a threshold must count the same


def test_oks_matrix_hand_checked():
    gt = np.zeros((1, 17, 3))
    gt[0, :, 2] = 2
    pred = np.zeros((2, 17, 3))
    pred[1, 0, 0] = 3.0  # nose 3 px off
    got = oks_matrix(gt, np.array([100.0]), np.array([[0, 0, 10, 10]]), pred)
    e = 9 / (2 * OKS_SIGMAS[0]) ** 2 / (100 + np.spacing(1)) / 2
    assert got[0, 0] == pytest.approx(1.0)
    assert got[1, 0] == pytest.approx((16 + np.exp(-e)) / 17, abs=1e-15)
    assert oks_matrix(gt, [100.0], [[0, 0, 10, 10]], np.zeros((0, 17, 3))).shape == (0, 1)


def test_mean_keypoint_similarity_counts_labelled_joints_only():
    gt = np.zeros((2, 17, 3))
    gt[0, :, 2] = 2
    gt[1, 0, 2] = 1
    pred = np.zeros((2, 17, 3))
    pred[1, 0, 0] = 5.0
    e = 25 / (2 * OKS_SIGMAS[0]) ** 2 / (50 + np.spacing(1)) / 2
    got = mean_keypoint_similarity(gt, np.array([50.0, 50.0]), pred)
    assert got[0] == pytest.approx((1 + np.exp(-e)) / 2)
    assert np.all(got[1:] == 1.0)
    assert np.isnan(mean_keypoint_similarity(gt[:, :, :] * [1, 1, 0], [1, 1], pred)).all()


def official_oks_nms(kpts, scores, areas, thresh):
    """lib/nms/nms.py oks_nms with in_vis_thre None, as a loop over the kept person."""
    vars_ = (OKS_SIGMAS * 2) ** 2
    kpts = kpts.reshape(len(kpts), -1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        g, rest = kpts[i], order[1:]
        ious = np.zeros(len(rest))
        for n, d in enumerate(rest):
            dx = kpts[d, 0::3] - g[0::3]
            dy = kpts[d, 1::3] - g[1::3]
            e = (dx**2 + dy**2) / vars_ / ((areas[i] + areas[d]) / 2 + np.spacing(1)) / 2
            ious[n] = np.sum(np.exp(-e)) / e.shape[0]
        order = order[np.where(ious <= thresh)[0] + 1]
    return keep


def test_oks_nms_hand_checked():
    base = np.zeros((17, 3))
    base[:, 0] = np.arange(17) * 10.0
    base[:, 1] = 100.0
    near = base.copy()
    near[:, 0] += 1.0  # OKS with base ~0.99: suppressed
    far = base.copy()
    far[:, 1] += 200.0  # OKS ~0: kept
    kpts = np.stack([near, base, far])
    scores = np.array([0.5, 0.9, 0.7])
    areas = np.full(3, 10000.0)
    assert oks_nms(kpts, scores, areas, 0.9).tolist() == [1, 2]
    assert oks_nms(kpts, scores, areas, 0.999).tolist() == [1, 2, 0]
    assert oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0)).tolist() == []


def test_oks_nms_matches_the_official_loop():
    rng = np.random.default_rng(3)
    centres = random_people(rng, 6)
    kpts = np.concatenate([centres + rng.normal(0, s, centres.shape) for s in (0.5, 2, 6, 15)])
    scores = rng.uniform(0, 1, len(kpts))
    scores[5] = scores[9]  # a tie breaks as the official argsort does
    areas = rng.uniform(2000, 30000, len(kpts))
    for thresh in (0.5, 0.8, 0.9, 0.95):
        assert oks_nms(kpts, scores, areas, thresh).tolist() == official_oks_nms(kpts, scores, areas, thresh)


def test_rescore_hand_checked():
    kpts = np.zeros((3, 17, 3))
    kpts[0, :, 2] = 0.8
    kpts[1, :4, 2] = [0.9, 0.5, 0.2, 0.1]  # only 0.9 and 0.5 are above 0.2
    kpts[2, :, 2] = 0.2  # none above: score 0, as the official evaluate()
    got = rescore(kpts, np.array([0.5, 1.0, 0.9]), 0.2)
    assert got == pytest.approx([0.4, 0.7, 0.0])


def test_rescore_matches_the_official_loop_bit_for_bit():
    rng = np.random.default_rng(5)
    kpts = rng.uniform(0, 1, (50, 17, 3))
    box = rng.uniform(0, 1, 50)
    expected = []
    for person, box_score in zip(kpts, box):
        kpt_score, valid_num = 0, 0
        for t_s in person[:, 2]:
            if t_s > 0.2:
                kpt_score = kpt_score + t_s
                valid_num = valid_num + 1
        if valid_num != 0:
            kpt_score = kpt_score / valid_num
        expected.append(kpt_score * box_score)
    assert rescore(kpts, box, 0.2).tolist() == expected


def test_keypoint_eval_gives_pycocotools_oks_and_numbers_to_the_bit(fixture_data):
    """The evaluator's COCOeval (computeOks vectorised) against pycocotools' own on real annotations: crowded
    images, persons without keypoints (the enlarged-box distance) and crowd regions; predictions near their
    person, far from everyone, and more of them than persons."""
    from hrpose_cli.data.coco import CocoKeypoints
    from hrpose_cli.engine.evaluator import STAT_NAMES, KeypointEval, coco_stats

    dataset = CocoKeypoints.load(fixture_data / "person_keypoints.json")
    rng = np.random.default_rng(0)
    results = []
    for ann in dataset.coco.dataset["annotations"]:
        k = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        for spread in (3.0, 0.3 * max(w, h)):
            guess = np.c_[np.where(k[:, 2:] > 0, k[:, :2], [x + w / 2, y + h / 2]) + rng.normal(0, spread, (17, 2)),
                          rng.uniform(0, 1, 17)]
            results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": guess.ravel().tolist(),
                            "score": float(rng.uniform())})
    with contextlib.redirect_stdout(io.StringIO()):
        ours = KeypointEval(dataset.coco, dataset.coco.loadRes([dict(r) for r in results]), iouType="keypoints")
        theirs = COCOeval(dataset.coco, dataset.coco.loadRes([dict(r) for r in results]), iouType="keypoints")
        for evaluation in (ours, theirs):
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
    assert ours.ious.keys() == theirs.ious.keys() and len(ours.ious) == len(dataset.coco.getImgIds())
    assert all(np.array_equal(ours.ious[key], theirs.ious[key]) for key in ours.ious)
    assert any(np.size(v) and 0.2 < np.max(v) < 0.99 for v in ours.ious.values())  # not all 0 or 1
    assert coco_stats(dataset, results) == dict(zip(STAT_NAMES, map(float, theirs.stats)))
    assert all("area" not in r for r in results)  # loadRes wrote into copies


def _records_equal(ours: list, theirs: list) -> bool:
    """evalImgs of two COCOevals, entry by entry, value for value."""
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        if a is None or b is None:
            if not (a is None and b is None):
                return False
            continue
        if a.keys() != b.keys():
            return False
        for key, value in b.items():
            if isinstance(value, np.ndarray):
                if a[key].shape != value.shape or not np.array_equal(a[key], value):
                    return False
            elif a[key] != value:
                return False
    return True


@pytest.mark.parametrize("params", ["coco", "analysis"])
def test_batched_matching_gives_pycocotools_records(fixture_data, params):
    """match_images (every image of an area range matched at once) against pycocotools' own evaluateImg, record
    for record, on real annotations (crowd regions, persons without joints, several area ranges): predictions
    near and far, exact duplicates (equal OKS and scores: the tie rules), an image with more predictions than
    maxDets, and images left without any; with COCO's parameters and the error analysis's."""
    from hrpose_cli.data.coco import CocoKeypoints
    from hrpose_cli.engine.evaluator import KeypointEval

    dataset = CocoKeypoints.load(fixture_data / "person_keypoints.json")
    rng = np.random.default_rng(1)
    image_ids = sorted(dataset.coco.getImgIds())
    results = []
    for ann in dataset.coco.dataset["annotations"]:
        if ann["image_id"] == image_ids[0]:
            continue  # an image with persons and no predictions
        k = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        for spread in (2.0, 0.1 * max(w, h), 0.4 * max(w, h)):
            guess = np.c_[np.where(k[:, 2:] > 0, k[:, :2], [x + w / 2, y + h / 2]) + rng.normal(0, spread, (17, 2)),
                          rng.uniform(0, 1, 17)]
            entry = {"image_id": ann["image_id"], "category_id": 1, "keypoints": guess.ravel().tolist(),
                     "score": float(rng.choice([0.5, rng.uniform()]))}
            results += [entry, dict(entry)] if spread == 2.0 else [entry]  # a duplicate: the same OKS and score
    crowded = image_ids[1]
    results += [{**results[0], "image_id": crowded, "score": float(s)} for s in rng.uniform(0, 1, 25)]

    def evaluate(cls):
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation = cls(dataset.coco, dataset.coco.loadRes([dict(r) for r in results]), iouType="keypoints")
            if params == "analysis":  # as engine.error_analysis sets them
                evaluation.params.iouThrs = np.array([0.5, 0.75, 0.85])
                evaluation.params.areaRng, evaluation.params.areaRngLbl = [[32.0**2, 1e10]], ["analysed"]
                evaluation.params.maxDets = [20]
            evaluation.evaluate()
            evaluation.accumulate()
        return evaluation

    ours, theirs = evaluate(KeypointEval), evaluate(COCOeval)
    assert _records_equal(ours.evalImgs, theirs.evalImgs)
    assert np.array_equal(ours.eval["precision"], theirs.eval["precision"])
    matched = [e for e in theirs.evalImgs if e is not None and e["dtMatches"].any()]
    assert matched and any(e["gtIgnore"].any() for e in theirs.evalImgs if e is not None)
    assert any(len(e["dtIds"]) == 20 for e in theirs.evalImgs if e is not None)  # maxDets cut the 25 + others


def test_batched_matching_gives_pycocotools_records_on_random_oks():
    """match_images against pycocotools' evaluateImg on 300 random images: OKS and scores drawn from a few values
    (ties everywhere), persons ignored, crowds, sizes around the area limits, and up to 25 detections for a
    maxDet of 20: the order of persons, the ignored ones' last turn, crowds matched again, and the area rule."""
    from collections import defaultdict

    from hrpose_cli.engine.evaluator import ImageTable, match_images, ranked_images

    rng = np.random.default_rng(3)
    stub = COCOeval(iouType="keypoints")
    stub.params.imgIds = list(range(300))
    stub._gts, stub._dts, stub.ious = defaultdict(list), defaultdict(list), {}
    next_id = iter(range(1, 100000))
    levels = np.array([0.0, 0.3, 0.5, 0.55, 0.75, 0.9, 0.95, 1.0])
    for image in stub.params.imgIds:
        g, d = rng.integers(0, 7), rng.integers(0, 26) * (rng.random() < 0.8)
        areas = rng.choice([500.0, 1024.0, 5000.0, 9216.0, 2e4], g)  # on and around the area limits
        stub._gts[image, 1] = [{"id": next(next_id), "area": float(area), "ignore": int(rng.random() < 0.2),
                                "iscrowd": int(rng.random() < 0.1)} for area in areas]
        stub._dts[image, 1] = [{"id": next(next_id), "area": float(rng.choice([500.0, 5000.0, 2e4])),
                                "score": float(rng.choice([0.2, 0.5, 0.9]))} for _ in range(d)]
        stub.ious[image, 1] = rng.choice(levels, (min(d, 20), g)) if g and d else []
    for area in ([0, 1e10], [32.0**2, 96.0**2], [96.0**2, 1e10]):
        theirs = [COCOeval.evaluateImg(stub, image, 1, area, 20) for image in stub.params.imgIds]
        table = ImageTable.build(ranked_images(stub, 1, 20), stub.ious, 1)
        ours = match_images(table, stub.params.iouThrs, 1, area, 20)
        assert _records_equal([ours.get(image) for image in stub.params.imgIds], theirs)


@pytest.mark.parametrize("max_pairs", [1, 500, 100_000])
def test_category_oks_gives_pycocotools_oks_in_chunks(max_pairs):
    """category_oks (core.oks.oks_blocks over many images at once) against pycocotools' own computeOks, to the
    bit, on 200 random images of up to 8 persons (some with no labelled joint, some with a few) and 25
    predictions (more than maxDets, tied scores), in one pass and in chunks of every size."""
    from collections import defaultdict

    from hrpose_cli.engine.evaluator import category_oks, ranked_images

    rng = np.random.default_rng(4)
    stub = COCOeval(iouType="keypoints")
    stub.params.imgIds = list(range(200))
    stub._gts, stub._dts = defaultdict(list), defaultdict(list)
    for image in stub.params.imgIds:
        for _ in range(rng.integers(0, 9)):
            x, y, w, h = *rng.uniform(0, 400, 2), *rng.uniform(10, 200, 2)
            k = np.c_[rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), rng.choice([0, 1, 2], 17)]
            k[:, 2] *= rng.random() < 0.9  # about one person in ten without a labelled joint
            k[rng.random(17) < rng.uniform(0, 0.9), 2] = 0
            stub._gts[image, 1].append({"keypoints": k.ravel().tolist(), "area": float(w * h * 0.6),
                                        "bbox": [x, y, w, h]})
        for _ in range(rng.integers(0, 26)):
            k = np.c_[rng.uniform(0, 600, (17, 2)), rng.uniform(0, 1, 17)]
            stub._dts[image, 1].append({"keypoints": k.ravel().tolist(), "score": float(rng.choice([0.3, 0.6]))})
    ours = category_oks(ranked_images(stub, 1, 20), stub.params.kpt_oks_sigmas, max_pairs=max_pairs)
    for image in stub.params.imgIds:
        theirs = COCOeval.computeOks(stub, image, 1)
        if len(theirs) == 0:
            assert image not in ours
        else:
            assert ours[image].shape == theirs.shape and np.array_equal(ours[image], theirs)
    assert sum(block.size for block in ours.values()) > 5000


def test_keypoint_results_equals_pycocotools_load_res(fixture_data):
    """keypoint_results gives loadRes's results object: each result's id, area and box (its keypoints' extent),
    written into the entries as loadRes writes them, and the same index."""
    from hrpose_cli.data.coco import CocoKeypoints
    from hrpose_cli.engine.evaluator import keypoint_results

    dataset = CocoKeypoints.load(fixture_data / "person_keypoints.json")
    rng = np.random.default_rng(5)
    entries = [{"image_id": int(i), "category_id": 1, "keypoints": np.c_[rng.uniform(0, 500, (17, 2)),
                                                                        rng.uniform(0, 1, 17)].ravel().tolist(),
                "score": float(rng.uniform())} for i in rng.choice(dataset.coco.getImgIds(), 40)]
    with contextlib.redirect_stdout(io.StringIO()):
        ours = keypoint_results(dataset.coco, [dict(e) for e in entries])
        theirs = dataset.coco.loadRes([dict(e) for e in entries])
    assert ours.anns.keys() == theirs.anns.keys() and ours.imgToAnns.keys() == theirs.imgToAnns.keys()
    for key, ann in theirs.anns.items():
        assert ours.anns[key]["area"] == ann["area"] and ours.anns[key]["bbox"] == ann["bbox"]
    assert ours.dataset["categories"] == theirs.dataset["categories"] and ours.getImgIds() == theirs.getImgIds()
