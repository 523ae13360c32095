"""`hrpose predict` end to end on real images, and its one-line errors."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from conftest import assert_one_line_error

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["predict", *args, "--device", "cpu", "--workers", "0"])


def test_predict_bbox_json_heatmaps_and_drawing(fixture_data, tiny_weights, tmp_path):
    image = sorted((fixture_data / "images").glob("*.jpg"))[0]
    out = tmp_path / "drawn"
    result = _invoke(str(image), "--weights", str(tiny_weights), "--bbox", "20,30,150,260",
                     "--json", str(tmp_path / "p.json"), "--save-heatmaps", str(tmp_path / "h.npz"), "--out", str(out))
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) == 1
    assert records[0]["image"] == str(image) and records[0]["bbox"] == [20, 30, 150, 260]
    assert len(records[0]["keypoints"]) == 51 and isinstance(records[0]["score"], float)
    heatmaps = np.load(tmp_path / "h.npz")["heatmaps"]
    assert heatmaps.shape == (1, 17, 64, 48) and np.isfinite(heatmaps).all()
    # The saved heatmaps are the ones decoded: each joint's score is its heatmap's peak.
    scores = np.array(records[0]["keypoints"]).reshape(17, 3)[:, 2]
    assert np.allclose(scores, heatmaps[0].reshape(17, -1).max(axis=1), atol=1e-5)
    drawn = cv2.imread(str(out / f"{image.stem}.jpg"))
    assert drawn is not None and drawn.shape == cv2.imread(str(image)).shape


def test_predict_folder_whole_image_batches_across_images(shared_data, tiny_weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    sources = sorted((shared_data / "coco-real" / "images").glob("coco_val2017_*.jpg"))[:5]
    for src in sources:
        (folder / src.name).write_bytes(src.read_bytes())
    result = _invoke(str(folder), "--weights", str(tiny_weights), "--batch", "2", "--json", str(tmp_path / "p.json"),
                     "--detector", "none")
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    assert [Path(r["image"]).name for r in records] == [s.name for s in sources]
    for record, src in zip(records, sources):
        h, w = cv2.imread(str(src)).shape[:2]
        assert record["bbox"] == [0, 0, w, h]  # no box given: the whole image is the person


def test_predict_boxes_file_matches_by_file_name_and_id(fixture_data, tiny_weights, tmp_path):
    images = sorted((fixture_data / "images").glob("*.jpg"))[:2]
    dets = [
        {"file_name": images[0].name, "bbox": [10, 10, 100, 200], "score": 0.9},
        {"image_id": int(images[1].stem.split("_")[-1]), "bbox": [5, 5, 80, 160], "score": 0.8, "category_id": 1},
        {"image_id": int(images[1].stem.split("_")[-1]), "bbox": [5, 5, 80, 160], "score": 0.05},
        {"file_name": images[0].name, "bbox": [1, 1, 50, 50], "score": 0.9, "category_id": 3},
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = _invoke(*map(str, images), "--weights", str(tiny_weights), "--boxes", str(tmp_path / "dets.json"),
                     "--min-box-score", "0.1", "--json", str(tmp_path / "p.json"))
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["bbox"] for r in records] == [[10, 10, 100, 200], [5, 5, 80, 160]]


def test_predict_video_frame_by_frame(fixture_data, tiny_weights, tmp_path):
    frame = cv2.resize(cv2.imread(str(sorted((fixture_data / "images").glob("*.jpg"))[0])), (160, 120))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    result = _invoke(str(video), "--weights", str(tiny_weights), "--batch", "2", "--out", str(out),
                     "--json", str(tmp_path / "p.json"), "--detector", "none")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4] and all(len(line["persons"]) == 1 for line in lines)
    assert (out / "clip.mp4").stat().st_size > 0
    assert not list(out.glob(".*partial*"))  # written under temporary names, then renamed
    assert [r["frame"] for r in json.loads((tmp_path / "p.json").read_text())] == [0, 1, 2, 3, 4]


def test_interrupted_video_leaves_earlier_outputs_whole_and_no_partials(fixture_data, tiny_weights, tmp_path,
                                                                         monkeypatch):
    from hrpose_cli.engine import inference

    frame = cv2.resize(cv2.imread(str(sorted((fixture_data / "images").glob("*.jpg"))[0])), (160, 120))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.jsonl").write_text("earlier run\n")
    real = inference.predict_frames
    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C during the second batch of frames
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_frames", interrupted)
    result = _invoke(str(video), "--weights", str(tiny_weights), "--batch", "2", "--out", str(out))
    assert result.exit_code != 0 and len(calls) == 2
    assert (out / "clip.jsonl").read_text() == "earlier run\n"
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl"]


def test_corrupt_video(tiny_weights, tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(bytes(range(256)) * 20)
    assert_one_line_error(_invoke(str(video), "--weights", str(tiny_weights)), "broken.mp4", "cannot open the video")


def test_missing_image(tiny_weights, tmp_path):
    assert_one_line_error(_invoke(str(tmp_path / "nope.jpg"), "--weights", str(tiny_weights)), "nope.jpg")


def test_corrupt_image_keeps_existing_json(tiny_weights, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    previous = tmp_path / "p.json"
    previous.write_text("[]")
    assert_one_line_error(_invoke(str(bad), "--weights", str(tiny_weights), "--json", str(previous)), "bad.jpg", "not a readable image")
    assert previous.read_text() == "[]"


@pytest.mark.parametrize("text, needle", [("10,10,0,50", "width and height must be positive"),
                                          ("10,10,-5,50", "width and height must be positive"),
                                          ("1,2,three,4", "expected four numbers"), ("1,2,3", "expected four numbers")])
def test_bad_bbox(fixture_data, tiny_weights, text, needle):
    image = sorted((fixture_data / "images").glob("*.jpg"))[0]
    assert_one_line_error(_invoke(str(image), "--weights", str(tiny_weights), "--bbox", text), "--bbox", needle)


def test_unreadable_checkpoint(fixture_data, tmp_path):
    weights = tmp_path / "broken.pt"
    weights.write_bytes(b"definitely not a checkpoint")
    image = sorted((fixture_data / "images").glob("*.jpg"))[0]
    assert_one_line_error(_invoke(str(image), "--weights", str(weights)), "broken.pt")


def test_verbose_shows_traceback(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope.jpg"), "--device", "cpu", "-v"])
    assert result.exit_code != 0 and result.exception is not None
