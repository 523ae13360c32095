"""`hrpose export` and `--weights model.onnx`: parity with torch on real crops, the README's snippet, bad input."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import REPO, assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.errors import HrposeError

pytest.importorskip("onnx", reason="needs the [onnx] extra (pip install -e '.[onnx]')")
pytest.importorskip("onnxruntime", reason="needs the [onnx] extra (pip install -e '.[onnx]')")

runner = CliRunner()


def _export(out: Path, *args: str) -> Path:
    result = runner.invoke(app, ["export", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("onnx") / "default.onnx")


@pytest.fixture(scope="module")
def official_w32(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """A random W32 in the official layout (no official checkpoint is at hand), with BatchNorm statistics
    measured on real crops so that its heatmaps spread as a trained model's do, and its ONNX export."""
    spec = importlib.util.spec_from_file_location("onnx_parity", REPO / "benchmarks" / "onnx_parity.py")
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    folder = tmp_path_factory.mktemp("w32")
    weights = parity.random_official_w32(folder / "pose_hrnet_w32_256x192.pth", shared_data)
    return weights, _export(folder / "w32.onnx", "--weights", str(weights))


def _val(shared_data: Path) -> tuple[Path, Path]:
    return shared_data / "coco-real" / "annotations" / "person_keypoints_val.json", shared_data / "coco-real" / "images"


def _eval(shared_data: Path, weights: Path | None, out: Path) -> tuple[dict, list[dict]]:
    """`hrpose eval` on coco-real val with GT boxes and the flip test: its ten numbers and its results file."""
    ann, images = _val(shared_data)
    out.mkdir()
    args = ["eval", "--ann", str(ann), "--images", str(images), "--device", "cpu", "--workers", "0",
            "--out", str(out), "--json", str(out / "stats.json")]
    result = runner.invoke(app, args + (["--weights", str(weights)] if weights else []))
    assert result.exit_code == 0, result.output
    return json.loads((out / "stats.json").read_text()), json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["default", "official-w32"])
def test_parity_on_coco_real_val(model, request, shared_data, tmp_path):
    """fp32 ONNX vs torch on the GT crops of coco-real val: the same ten COCO numbers (to 1e-4) from
    `hrpose eval --weights model.onnx`, keypoints of every person within 0.01 px, heatmaps within 1e-4
    (every crop for the default model, the first 16 for the W32, whose full set benchmarks/onnx_parity.py measures)."""
    from hrpose_cli.data.coco import CocoKeypoints
    from hrpose_cli.engine.inference import load_predictor
    from hrpose_cli.engine.model_eval import predict_records

    if model == "default":
        weights, onnx_path = None, request.getfixturevalue("default_onnx")
    else:
        weights, onnx_path = request.getfixturevalue("official_w32")
    (torch_stats, torch_results), (onnx_stats, onnx_results) = (
        _eval(shared_data, weights, tmp_path / "torch"), _eval(shared_data, onnx_path, tmp_path / "onnx"))
    for key in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"):
        assert abs(onnx_stats[key] - torch_stats[key]) <= 1e-4, key
    assert [r["image_id"] for r in onnx_results] == [r["image_id"] for r in torch_results]
    kps = [np.array([r["keypoints"] for r in results]).reshape(len(results), -1, 3) for results in (torch_results, onnx_results)]
    assert len(kps[0]) >= 55 and np.abs(kps[1][..., :2] - kps[0][..., :2]).max() <= 0.01
    assert np.abs(kps[1][..., 2] - kps[0][..., 2]).max() <= 1e-4
    if model == "default":
        assert torch_stats["AP"] > 0.2

    ann, images = _val(shared_data)
    records = CocoKeypoints.load(ann).persons(images)[: None if model == "default" else 16]
    runs = [predict_records(load_predictor(w, "cpu"), records, 64, 0, keep_heatmaps=True) for w in (weights, onnx_path)]
    assert runs[0].heatmaps.max() > 0.5  # heatmaps of a trained model's range, not random initialisation's 1e-13
    assert np.abs(runs[1].heatmaps - runs[0].heatmaps).max() <= 1e-4


def test_metadata_in_the_file(default_onnx):
    import onnx

    from hrpose_cli import __version__
    from hrpose_cli.core.schema import COCO17
    FLIP_PAIRS = COCO17.flip_pairs
    KEYPOINT_NAMES = COCO17.names
    OKS_SIGMAS = COCO17.oks_sigmas

    meta = {p.key: p.value for p in onnx.load(str(default_onnx)).metadata_props}
    assert meta["format"] == "hrpose-pose" and meta["hrpose_version"] == __version__
    assert meta["input_size"] == "256x192" and meta["heatmap_size"] == "64x48"
    assert json.loads(meta["keypoint_names"]) == list(KEYPOINT_NAMES)
    assert [tuple(p) for p in json.loads(meta["flip_pairs"])] == list(FLIP_PAIRS)
    assert np.allclose(json.loads(meta["sigmas"]), OKS_SIGMAS)
    assert "unreliable" in meta["model_card"]  # the default model's own caveat travels with it
    assert meta["flip_test"] == "1" and meta["batch"] == "dynamic" and meta["precision"] == "fp32"


def test_fixed_batch_no_flip_and_half(fixture_data, tmp_path):
    """A fixed-batch export runs any number of persons (chunked, the last chunk padded); --no-flip and
    --half do what they say; the flip test of the file must match the command's."""
    from hrpose_cli.engine.inference import load_predictor
    from hrpose_cli.engine.model_eval import predict_records
    from hrpose_cli.data.coco import CocoKeypoints

    records = CocoKeypoints.load(fixture_data / "person_keypoints.json").persons(fixture_data / "images")
    assert len(records) % 4  # so that one chunk is padded
    fixed = _export(tmp_path / "b4.onnx", "--batch", "4", "--no-flip")
    half = _export(tmp_path / "half.onnx", "--half")
    torch_plain = predict_records(load_predictor(None, "cpu", flip=False), records, 64, 0)
    onnx_plain = predict_records(load_predictor(fixed, "cpu", flip=False), records, 64, 0)
    assert np.abs(onnx_plain.keypoints[..., :2] - torch_plain.keypoints[..., :2]).max() <= 0.01
    torch_flip = predict_records(load_predictor(None, "cpu"), records, 64, 0, keep_heatmaps=True)
    onnx_half = predict_records(load_predictor(half, "cpu"), records, 64, 0, keep_heatmaps=True)
    assert 0 < np.abs(onnx_half.heatmaps - torch_flip.heatmaps).max() < 1e-2
    assert half.stat().st_size < 0.6 * fixed.stat().st_size

    image = str(sorted((fixture_data / "images").glob("*.jpg"))[0])
    result = runner.invoke(app, ["predict", image, "--weights", str(fixed), "--device", "cpu", "--detector", "none"])
    assert_one_line_error(result, "b4.onnx", "without the flip test", "--no-flip")
    result = runner.invoke(app, ["predict", image, "--weights", str(fixed), "--device", "cpu", "--detector", "none",
                                 "--no-flip", "--compile"])
    assert_one_line_error(result, "b4.onnx", "--compile")
    result = runner.invoke(app, ["predict", image, "--weights", str(fixed), "--device", "cpu", "--detector", "none",
                                 "--no-flip", "--precision", "bf16"])
    assert_one_line_error(result, "b4.onnx", "--precision", "--half")


def test_readme_snippet_runs_without_hrpose(default_onnx, fixture_data, tmp_path):
    """The README's snippet (numpy, OpenCV, onnxruntime) gives hrpose's keypoints for an image and a box."""
    snippet = re.search(r"```python\n(import json\n.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    assert "hrpose" not in snippet and "torch" not in snippet
    image = fixture_data / "images" / "coco_train2017_000000444294.jpg"
    box = (367.51, 56.45, 115.14, 160.25)  # its annotated person
    line = re.search(r'^MODEL, IMAGE, BOX = .*$', snippet, re.M).group(0)
    snippet = snippet.replace(line, f"MODEL, IMAGE, BOX = {str(default_onnx)!r}, {str(image)!r}, {box!r}")
    check = "\nimport sys\nassert not {'torch', 'hrpose_cli'} & set(sys.modules), 'the snippet needs hrpose'\n"
    done = subprocess.run([sys.executable, "-c", snippet + check], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = np.array([[float(v) for v in line.split()[1:]] for line in done.stdout.strip().splitlines()])

    result = runner.invoke(app, ["predict", str(image), "--bbox", ",".join(map(str, box)), "--device", "cpu",
                                 "--workers", "0", "--json", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    expected = np.array(json.loads((tmp_path / "p.json").read_text())[0]["keypoints"]).reshape(-1, 3)
    # OpenCV's bilinear warp weighs in 1/32 pixel steps, hrpose's in float: the crops differ by a grey level here and
    # there. That moves a joint by less than 0.5 px or, where a peak's two neighbours score almost alike, turns its
    # quarter-cell offset the other way: half a heatmap cell apart (the crop is 1.25 x the box's height, 64 cells).
    half_cell = 0.5 * 1.25 * box[3] / 64
    error = np.abs(got[:, :2] - expected[:, :2])
    turned = np.abs(error - half_cell) < 0.02  # the snippet prints 2 decimals
    assert got.shape == (17, 3) and np.all((error < 0.5) | turned) and turned.sum() <= 1, (error, half_cell)
    assert np.abs(got[:, 2] - expected[:, 2]).max() < 0.02


def _edited(source: Path, target: Path, **changes: str) -> Path:
    import onnx

    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    onnx.save(model, str(target))
    return target


def test_bad_onnx_files_and_outputs(default_onnx, fixture_data, tmp_path):
    image = str(sorted((fixture_data / "images").glob("*.jpg"))[0])

    def predict(weights: Path, *extra: str):
        return runner.invoke(app, ["predict", image, "--weights", str(weights), "--device", "cpu", "--detector", "none",
                                   "--workers", "0", *extra])

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not protobuf" * 10)
    assert_one_line_error(predict(corrupt), "corrupt.onnx", "cannot read the ONNX model")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(default_onnx.read_bytes()[:100_000])
    assert_one_line_error(predict(truncated), "truncated.onnx", "cannot read the ONNX model")
    assert_one_line_error(predict(tmp_path / "missing.onnx"), "missing.onnx", "no such file")

    config = json.loads({p.key: p.value for p in __import__("onnx").load(str(default_onnx)).metadata_props}["config"])
    bigger = _edited(default_onnx, tmp_path / "size.onnx", config=json.dumps({**config, "input_size": [384, 288]}))
    assert_one_line_error(predict(bigger), "size.onnx", "3x384x288")
    joints = _edited(default_onnx, tmp_path / "joints.onnx", config=json.dumps({**config, "num_joints": 4}))
    assert_one_line_error(predict(joints), "joints.onnx", "4 keypoints")
    foreign = _edited(default_onnx, tmp_path / "foreign.onnx", format="something-else")
    assert_one_line_error(predict(foreign), "foreign.onnx", "not an hrpose-pose model")
    assert_one_line_error(predict(default_onnx, "--input-size", "384x288"), default_onnx.name, "256x192", "384x288")

    mouse = REPO.parent / "shared" / "data" / "custom" / "mouse"
    if (mouse / "annotations" / "val.json").is_file():
        result = runner.invoke(app, ["eval", "--ann", str(mouse / "annotations" / "val.json"), "--images",
                                     str(mouse / "images"), "--weights", str(default_onnx), "--device", "cpu",
                                     "--out", str(tmp_path / "ev")])
        assert_one_line_error(result, default_onnx.name, "17 keypoints", "labels 4")

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert_one_line_error(runner.invoke(app, ["export", "--out", str(blocker / "model.onnx")]), "a_file", "cannot write")
    assert_one_line_error(runner.invoke(app, ["export", "--out", str(tmp_path)]), str(tmp_path), "directory")
    assert_one_line_error(runner.invoke(app, ["export", "--out", str(tmp_path / "x.onnx"), "--batch", "0"]), "--batch")
    assert_one_line_error(runner.invoke(app, ["export", "--weights", str(default_onnx)]), "already an ONNX model")
    trained = runner.invoke(app, ["train", "--weights", str(default_onnx), "--out", str(tmp_path / "t")])
    assert trained.exit_code == 1 and "needs a torch checkpoint" in trained.output and "Traceback" not in trained.output
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "x.onnx").exists()


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, "onnxruntime", "[onnx]", 'pip install -e ".[onnx]"')


def test_detector_export_finds_the_same_people(fixture_data, tmp_path):
    """`hrpose export --detector`: predict with --detector det.onnx finds the same boxes (hence keypoints)."""
    import onnx

    det = tmp_path / "det.onnx"
    result = runner.invoke(app, ["export", "--detector", "--out", str(det)])
    assert result.exit_code == 0, result.output
    meta = {p.key: p.value for p in onnx.load(str(det)).metadata_props}
    assert meta["format"] == "hrpose-detector" and meta["input_size"] == "416x416" and "NanoDet" in meta["model_card"]
    records = {}
    for name, extra in (("torch", []), ("onnx", ["--detector", str(det)])):
        result = runner.invoke(app, ["predict", str(fixture_data / "images"), "--device", "cpu", "--workers", "0",
                                     "--json", str(tmp_path / f"{name}.json"), *extra])
        assert result.exit_code == 0, result.output
        records[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert len(records["onnx"]) == len(records["torch"]) >= 10
    for a, b in zip(records["torch"], records["onnx"]):
        assert a["image"] == b["image"] and np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 0.011
        assert abs(a["det_score"] - b["det_score"]) <= 1e-3
        assert np.abs(np.subtract(a["keypoints"], b["keypoints"])).max() <= 0.011

    image = str(sorted((fixture_data / "images").glob("*.jpg"))[0])
    pose = _export(tmp_path / "pose.onnx", "--batch", "2")
    assert_one_line_error(runner.invoke(app, ["predict", image, "--device", "cpu", "--detector", str(pose)]),
                          "pose.onnx", "not an hrpose-detector model")
    assert_one_line_error(runner.invoke(app, ["export", "--detector", "--half", "--out", str(tmp_path / "d.onnx")]),
                          "--half", "not of --detector")
    assert_one_line_error(runner.invoke(app, ["predict", image, "--device", "cpu", "--detector", "yolo"]),
                          "--detector 'yolo'")


def test_auto_device_runs_onnx_on_the_cpu_without_a_cuda_provider(default_onnx, monkeypatch):
    """On a GPU machine with the PyPI onnxruntime (CPU only), --device auto runs an ONNX model on the CPU
    instead of stopping; an explicit --device cuda still says what is missing."""
    from types import SimpleNamespace

    from hrpose_cli.engine import inference, onnx_pose

    real = inference.Runtime.create
    on_cuda = SimpleNamespace(device=torch.device("cuda", 0))
    monkeypatch.setattr(inference.Runtime, "create",
                        staticmethod(lambda spec="auto", **kw: on_cuda if spec in ("auto", "cuda") else real(spec, **kw)))
    monkeypatch.setattr(onnx_pose, "cuda_provider_available", lambda: False)
    monkeypatch.setattr(inference, "cuda_provider_available", lambda: False)
    predictor = inference.load_predictor(default_onnx, "auto", True, "argmax")
    assert predictor.runtime.device.type == "cpu"
    with pytest.raises(HrposeError, match="no CUDA provider"):
        inference.load_predictor(default_onnx, "cuda", True, "argmax")


def test_export_carries_another_keypoint_set(tmp_path):
    """A checkpoint of another set exports its keypoint set into the metadata; the ONNX model predicts with it."""
    from hrpose_cli.core.schema import from_category
    from hrpose_cli.engine.inference import load_predictor
    from hrpose_cli.model.checkpoints import save_checkpoint
    from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

    schema = from_category({"id": 1, "name": "mouse", "keypoints": ["snout", "left_ear", "right_ear", "tail_base"],
                            "skeleton": [[1, 2], [1, 3], [2, 4], [3, 4]]}, "mouse").with_options(sigmas=[0.026, 0.035, 0.035, 0.107])
    config = HRNetConfig.from_arch("w16-small", input_size=(128, 96), num_joints=4)
    weights = save_checkpoint(tmp_path / "mouse.pt", PoseHRNet(config), config, keypoints=schema.to_dict())
    onnx_path = _export(tmp_path / "mouse.onnx", "--weights", str(weights))
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["keypoint_names"]) == ["snout", "left_ear", "right_ear", "tail_base"]
    assert json.loads(meta["flip_pairs"]) == [[1, 2]] and json.loads(meta["sigmas"])[3] == 0.107
    predictor = load_predictor(onnx_path, "cpu")
    assert predictor.schema == schema and predictor.flip_perm.tolist() == [0, 2, 1, 3]
