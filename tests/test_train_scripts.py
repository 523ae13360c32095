"""The scripts that train, export and pack the default model (benchmarks/): real runs on the fixture, and one-line
errors for bad input."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from hrpose_cli.engine import trainer
from hrpose_cli.model.checkpoints import load_model
from test_train import subset, tiny

ROOT = Path(__file__).resolve().parents[1]


def script(*args: str) -> subprocess.CompletedProcess:
    """A benchmarks/ script run as a user runs it, from the project root."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


def test_export_raw_weights_and_average_scripts(tmp_path, fixture_data):
    ann = subset(fixture_data / "person_keypoints.json", tmp_path / "few.json", 4, min_joints=5)
    trainer.run(tiny(tmp_path, ann, fixture_data / "images", epochs=1, batch=2, recipe="strong", ema=0.9))
    last = tmp_path / "run" / "last.pt"

    assert script("benchmarks/export_model.py", str(last), str(tmp_path / "avg.pt")).returncode == 0
    assert script("benchmarks/export_model.py", str(last), str(tmp_path / "raw.pt"), "--raw-weights",
                  "--note", "a caveat").returncode == 0
    assert torch.load(tmp_path / "raw.pt", weights_only=True)["meta"]["note"] == "a caveat"
    assert "note" not in torch.load(tmp_path / "avg.pt", weights_only=True)["meta"]
    done = script("benchmarks/average_weights.py", str(tmp_path / "mean.pt"), str(tmp_path / "avg.pt"),
                  str(tmp_path / "raw.pt"))
    assert done.returncode == 0, done.stderr
    checkpoint = torch.load(last, weights_only=True)
    avg, raw, mean = (load_model(tmp_path / f"{n}.pt")[0].float().state_dict() for n in ("avg", "raw", "mean"))
    key = next(k for k, v in raw.items() if v.is_floating_point() and v.numel() > 1)
    assert torch.allclose(raw[key], checkpoint["train_state"]["raw_weights"][key].float(), atol=1e-2)
    assert torch.allclose(avg[key], checkpoint["state_dict"][key].float(), atol=1e-2)
    assert torch.allclose(mean[key], (avg[key] + raw[key]) / 2, atol=2e-3)
    bad = script("benchmarks/export_model.py", str(tmp_path / "avg.pt"), str(tmp_path / "x.pt"), "--raw-weights")
    assert bad.returncode == 1 and "no raw weights" in bad.stderr and "Traceback" not in bad.stderr
    bad = script("benchmarks/average_weights.py", str(tmp_path / "m.pt"), str(tmp_path / "avg.pt"))
    assert bad.returncode == 1 and "usage" in bad.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for bad in (script("benchmarks/export_model.py", str(last), str(blocker / "x.pt")),
                script("benchmarks/average_weights.py", str(blocker / "m.pt"), str(tmp_path / "avg.pt"), str(tmp_path / "raw.pt")),
                script("benchmarks/average_weights.py", str(tmp_path / "m.pt"), str(tmp_path / "avg.pt"), str(blocker))):
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 1 and len(lines) == 1 and str(blocker) in lines[0], bad.stderr


def test_thin_frames_script_keeps_two_of_every_three_frames(tmp_path):
    images = [{"id": i, "file_name": f"f{i}.jpg"} for i in (7, 3, 5, 1, 9, 11, 13)]  # id order 1 3 5 7 9 11 13
    anns = [{"id": 100 + i, "image_id": i} for i in (1, 5, 5, 11, 13)]
    (tmp_path / "in.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": []}))
    done = script("benchmarks/thin_frames.py", str(tmp_path / "in.json"), str(tmp_path / "out.json"))
    assert done.returncode == 0, done.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert sorted(img["id"] for img in out["images"]) == [1, 3, 7, 9, 13]  # the 3rd and 6th by id go
    assert [a["image_id"] for a in out["annotations"]] == [1, 13]
    assert out["categories"] == []


def test_thin_frames_and_default_model_script_bad_input_is_one_line(tmp_path):
    (tmp_path / "not_coco.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text('{"images": [')
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    fixture = ROOT / "tests" / "data" / "person_keypoints.json"
    runs = [[sys.executable, "benchmarks/thin_frames.py", str(src), str(out)] for src, out in (
        (tmp_path / "missing.json", tmp_path / "o.json"), (tmp_path / "not_coco.json", tmp_path / "o.json"),
        (tmp_path / "broken.json", tmp_path / "o.json"), (fixture, blocker / "o.json"))]
    if shutil.which("bash"):
        runs += [["bash", "benchmarks/train_default_model.sh", str(tmp_path), str(tmp_path / "run"), str(blocker)],
                 ["bash", "benchmarks/train_default_model.sh", str(tmp_path), str(tmp_path / "run"),
                  str(tmp_path / "no_teacher.json")]]
    for argv in runs:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), (argv, done.stderr)
        assert str(tmp_path) in lines[0]
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "run").exists()


def test_mixed_shard_script_splits_every_source_and_keeps_coco_whole(tmp_path, fixture_data):
    fm = tmp_path / "fm"
    for name in ("coco", "fashion17", "pelota", "badminton", "ccp", "humanseg", "cctv"):
        shutil.copytree(fixture_data / "images", fm / name / "images")
        shutil.copy(fixture_data / "person_keypoints.json", fm / name / "annotations.json")
    images = {i["file_name"] for i in json.loads((fixture_data / "person_keypoints.json").read_text())["images"]}
    seen = []
    for part in range(2):
        out = tmp_path / f"m{part}.zip"
        done = script("benchmarks/mixed_shard.py", str(fm), str(out), "--part", str(part), "--of", "2")
        assert done.returncode == 0, done.stderr
        with zipfile.ZipFile(out) as shard:
            assert {n.split("/")[-1] for n in shard.namelist() if n.startswith("coco/images/")} == images
            files = {n.split("/")[-1] for n in shard.namelist() if n.startswith("ccp/images/")}
            ann = json.loads(shard.read("ccp/annotations.json"))
            assert {i["file_name"] for i in ann["images"]} == files
            assert {a["image_id"] for a in ann["annotations"]} <= {i["id"] for i in ann["images"]}
        seen.append(files)
    assert not seen[0] & seen[1] and seen[0] | seen[1] == images and seen[0] and seen[1]
    done = script("benchmarks/mixed_shard.py", str(fm), str(tmp_path / "w.zip"), "--part", "1", "--of", "2",
                  "--whole", "ccp")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "w.zip") as shard:
        names = shard.namelist()
        assert {n.split("/")[-1] for n in names if n.startswith("ccp/images/")} == images
        assert {n.split("/")[-1] for n in names if n.startswith("cctv/images/")} == seen[1]
    done = script("benchmarks/mixed_shard.py", str(tmp_path / "none"), str(tmp_path / "x.zip"), "--part", "0")
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "none" in done.stderr
    done = script("benchmarks/mixed_shard.py", str(fm), str(tmp_path / "x.zip"), "--part", "0", "--whole", "shoes")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "--whole shoes" in done.stderr
    assert not (tmp_path / "x.zip").exists()


def test_any_folder_of_photos_joins_as_people_for_the_teacher(tmp_path, fixture_data):
    """unlabelled_people.py --photos: the detector's boxes in every photo, ready for pack_crops.py --unlabelled."""
    photos = fixture_data / "images"
    done = script("benchmarks/unlabelled_people.py", str(tmp_path / "u"), "--photos", "fx", str(photos),
                  "--device", "cpu")
    assert done.returncode == 0, done.stderr
    coco = json.loads((tmp_path / "u" / "fx" / "annotations.json").read_text())
    assert json.loads(done.stdout)["fx"] == {"photos": len(list(photos.glob("*.jpg"))),
                                             "detector_boxes": len(coco["annotations"])}
    assert coco["annotations"] and all(a["bbox"][3] >= 48 and a["num_keypoints"] == 0 for a in coco["annotations"])
    sizes = {i["file_name"]: (i["height"], i["width"]) for i in coco["images"]}
    gt = json.loads((fixture_data / "person_keypoints.json").read_text())["images"]
    assert all(sizes[i["file_name"]] == (i["height"], i["width"]) for i in gt if i["file_name"] in sizes)
    packed = script("benchmarks/pack_crops.py", str(tmp_path / "pack"), "--unlabelled", "fx",
                    str(tmp_path / "u" / "fx" / "annotations.json"), str(photos))
    assert packed.returncode == 0, packed.stderr
    assert f"{len(coco['annotations'])} persons" in packed.stdout
    bad = script("benchmarks/unlabelled_people.py", str(tmp_path / "v"), "--photos", "none", str(tmp_path / "missing"))
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {tmp_path / 'missing'}: photos folder not found"
    corrupt = tmp_path / "corrupt"
    shutil.copytree(photos, corrupt)
    (corrupt / "zz.jpg").write_bytes(b"not a jpeg")
    bad = script("benchmarks/unlabelled_people.py", str(tmp_path / "w"), "--photos", "c", str(corrupt))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and str(corrupt / "zz.jpg") in bad.stderr
    assert not (tmp_path / "w").exists()
