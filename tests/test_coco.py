"""Annotation and detection loading: the official HRNet GT set, validation, the shipped fixture and sample."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from hrpose_cli.data.coco import CocoKeypoints, load_results, sample_dataset
from hrpose_cli.errors import HrposeError


def official_gt_db(ann_file):
    """The official _load_coco_keypoint_annotation_kernal over all images: (image id, clean box, joints)."""
    coco = COCO(str(ann_file))
    db = []
    for index in sorted(coco.getImgIds()):
        im_ann = coco.loadImgs(index)[0]
        width, height = im_ann["width"], im_ann["height"]
        objs = coco.loadAnns(coco.getAnnIds(imgIds=index, iscrowd=False))
        valid = []
        for obj in objs:
            x, y, w, h = obj["bbox"]
            x1 = np.max((0, x))
            y1 = np.max((0, y))
            x2 = np.min((width - 1, x1 + np.max((0, w - 1))))
            y2 = np.min((height - 1, y1 + np.max((0, h - 1))))
            if obj["area"] > 0 and x2 >= x1 and y2 >= y1:
                valid.append((obj, [x1, y1, x2 - x1, y2 - y1]))
        for obj, box in valid:
            if obj["category_id"] != 1 or max(obj["keypoints"]) == 0:
                continue
            db.append((index, box, np.array(obj["keypoints"], float).reshape(17, 3)))
    return db


def check_persons(ann_file, tmp_path):
    dataset = CocoKeypoints.load(ann_file)
    records = dataset.persons(tmp_path)
    expected = official_gt_db(ann_file)
    assert len(records) == len(expected)
    for record, (image_id, box, joints) in zip(records, expected):
        assert record.image_id == image_id
        assert record.bbox.tolist() == [float(v) for v in box]
        assert np.array_equal(record.joints, joints)
        assert record.image_path == tmp_path / dataset.coco.imgs[image_id]["file_name"]
        assert record.ann_id >= 0 and record.score == 1.0


def test_persons_are_the_official_gt_set_on_the_fixture(fixture_data, tmp_path):
    check_persons(fixture_data / "person_keypoints.json", tmp_path)


@pytest.mark.parametrize("split", ["train", "val"])
def test_persons_are_the_official_gt_set_on_real_data(shared_data, split, tmp_path):
    check_persons(shared_data / "coco-real" / "annotations" / f"person_keypoints_{split}.json", tmp_path)


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def tiny_set(**changes):
    kp = [0] * 51
    kp[3:6] = [20, 30, 2]
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [dict(a, keypoints=list(a["keypoints"])) for a in [
            {"id": 1, "image_id": 7, "category_id": 1, "keypoints": kp, "bbox": [-5, 10, 200, 30.5], "area": 50.0},
            {"id": 2, "image_id": 7, "category_id": 1, "keypoints": kp, "bbox": [5, 10, 20, 30], "area": 0.0},
            {"id": 3, "image_id": 7, "category_id": 1, "keypoints": kp, "bbox": [5, 10, 20, 30], "area": 9,
             "iscrowd": 1},
            {"id": 4, "image_id": 7, "category_id": 1, "keypoints": [0] * 51, "bbox": [5, 10, 20, 30], "area": 9.0},
            {"id": 5, "image_id": 7, "category_id": 1, "keypoints": kp, "bbox": [150, 10, 20, 30], "area": 9.0},
        ]],
        "categories": [{"id": 1, "name": "person"}],
    }
    data.update(changes)
    return data


def test_box_cleaning_and_filters(tmp_path):
    dataset = CocoKeypoints.load(write(tmp_path / "a.json", tiny_set()))
    records = dataset.persons(tmp_path)
    # 2: area 0; 3: crowd; 4: no labelled joint; 5: box right of the image (x2 < x1)
    assert [r.ann_id for r in records] == [1]
    assert records[0].bbox.tolist() == [0, 10, 99, 29.5]
    assert dataset.num_people == 3  # what COCOeval counts: non-crowd with labelled joints, whatever the box
    assert dataset.num_joints == 17 and dataset.image_ids == [7]
    assert dataset.coco.anns[4]["num_keypoints"] == 0  # filled in for pycocotools


def test_load_is_silent(fixture_data, capsys):
    CocoKeypoints.load(fixture_data / "person_keypoints.json")
    assert capsys.readouterr().out == ""


def test_other_keypoint_sets(tmp_path):
    data = tiny_set(categories=[{"id": 1, "name": "person", "keypoints": [f"p{i}" for i in range(5)]}])
    for ann in data["annotations"]:
        ann["keypoints"] = ann["keypoints"][:15]
    dataset = CocoKeypoints.load(write(tmp_path / "a.json", data))
    assert dataset.num_joints == 5 and dataset.keypoint_names[0] == "p0"
    assert dataset.persons(tmp_path)[0].joints.shape == (5, 3)
    # no sigmas given: one uniform value (the set's schema says so, and commands print why)
    assert dataset.oks_sigmas().tolist() == [0.067] * 5 and dataset.schema.uniform_sigma_warning()
    assert dataset.oks_sigmas(np.ones(5)).tolist() == [1] * 5
    with pytest.raises(HrposeError, match="5 keypoints per person but 3 sigmas"):
        dataset.oks_sigmas(np.ones(3))
    with pytest.raises(HrposeError, match="names 5 keypoints, expected 17"):
        CocoKeypoints.load(tmp_path / "a.json", num_joints=17)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"annotations": [{"id": 1, "image_id": 7}]}, "annotation 0 lacks category_id, keypoints, bbox, area"),
        ({"images": [{"id": 7, "file_name": "a.jpg"}]}, "image 0 lacks width, height"),
        ({"images": [{"id": 8, "file_name": "a.jpg", "width": 1, "height": 1}]}, "missing from 'images': 7"),
        ({"images": "x"}, "not a COCO annotation file"),
    ],
)
def test_bad_annotation_files(tmp_path, change, message):
    path = write(tmp_path / "bad.json", tiny_set(**change))
    with pytest.raises(HrposeError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        CocoKeypoints.load(path)


def test_bad_keypoint_values(tmp_path):
    data = tiny_set()
    data["annotations"][2]["keypoints"][4] = "x"
    with pytest.raises(HrposeError, match="annotation 2: keypoints must be finite numbers"):
        CocoKeypoints.load(write(tmp_path / "a.json", data))


def test_detections(tmp_path):
    dataset = CocoKeypoints.load(write(tmp_path / "a.json", tiny_set()))
    dets = [
        {"image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 2, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.1},
    ]
    records = dataset.detections(write(tmp_path / "d.json", dets), tmp_path / "im", min_score=0.05)
    assert [(r.bbox.tolist(), r.score, r.ann_id, r.area) for r in records] == [
        ([1, 2, 30, 40], 0.9, -1, 1200.0),
        ([5, 5, 10, 10], 0.1, -1, 100.0),
    ]
    assert records[0].image_path == tmp_path / "im" / "a.jpg" and not records[0].joints.any()
    assert len(dataset.detections(tmp_path / "d.json", tmp_path, min_score=0.5)) == 1

    bad = write(tmp_path / "unknown.json", dets + [{"image_id": 99, "bbox": [1, 1, 1, 1], "score": 1}])
    with pytest.raises(HrposeError, match=re.escape(f"{bad}: image ids not in {tmp_path / 'a.json'}: 99")):
        dataset.detections(bad, tmp_path)
    empty_box = write(tmp_path / "empty.json", dets + [{"image_id": 7, "bbox": [1, 1, 0, 5], "score": 1}])
    with pytest.raises(HrposeError, match="detection 3 has an empty box"):
        dataset.detections(empty_box, tmp_path)


def test_load_results_defaults_the_category(tmp_path):
    dataset = CocoKeypoints.load(write(tmp_path / "a.json", tiny_set()))
    path = write(tmp_path / "r.json", [{"image_id": 7, "keypoints": [1.0] * 51, "score": 0.5}])
    results = load_results(path, dataset)
    assert results[0]["category_id"] == 1


@pytest.mark.parametrize("folder", ["tests/data", "assets/sample"])
def test_shipped_images_are_attributed(folder):
    root = Path(__file__).resolve().parents[1] / folder
    data = json.loads((root / "person_keypoints.json").read_text())
    attribution = (root / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution
    files = sorted(p.name for p in (root / "images").iterdir())
    assert files == sorted(im["file_name"] for im in data["images"])
    for image in data["images"]:
        assert image["license"] in (4, 5)
        line = next(line for line in attribution.splitlines() if image["file_name"] in line)
        assert image["flickr_url"] in line and ("CC BY 2.0" in line or "CC BY-SA 2.0" in line)
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 1.5e6
    assert CocoKeypoints.load(root / "person_keypoints.json").num_people >= 9


def test_sample_dataset_is_found():
    ann, images = sample_dataset()
    assert ann.is_file() and images.is_dir()
