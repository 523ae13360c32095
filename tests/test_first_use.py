"""What a new user trips over (issue 16): silent drops, late failures, unreadable outputs, two kinds of range
error. Each test runs the real command on the shipped fixture photos."""

import json
import os
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hrpose_cli.cli.app import app
from hrpose_cli.files import atomic_write, normal_file_mode, write_json
from hrpose_cli.model.checkpoints import save_checkpoint
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet
from conftest import assert_one_line_error

runner = CliRunner()


@pytest.fixture
def photos(fixture_data) -> list[Path]:
    return sorted((fixture_data / "images").glob("*.jpg"))


def _predict(*args: str):
    return runner.invoke(app, ["predict", *args, "--device", "cpu", "--workers", "0"])


def _lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


# 1. predict --boxes says what it could not use, and matches by file_name first, id second
def test_boxes_file_reports_images_without_box_and_detections_without_image(photos, tiny_weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for src, name in zip(photos[:3], ("ochuman_000817.jpg", photos[1].name, photos[2].name)):
        shutil.copy(src, folder / name)
    dets = [
        {"file_name": "val/ochuman_000817.jpg", "image_id": 900000001, "bbox": [10, 10, 100, 200], "score": 0.9},
        {"file_name": "renamed.jpg", "image_id": int(photos[1].stem.split("_")[-1]), "bbox": [5, 5, 80, 160], "score": 0.8},
        {"image_id": 900000003, "bbox": [5, 5, 80, 160], "score": 0.7},  # an id no file name ends with
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = _predict(str(folder), "--weights", str(tiny_weights), "--boxes", str(tmp_path / "dets.json"),
                      "--json", str(tmp_path / "p.json"))
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "p.json").read_text())
    assert sorted(Path(r["image"]).name for r in records) == sorted(["ochuman_000817.jpg", photos[1].name])
    assert "1 of 3 image(s) had no box" in result.output
    assert "1 detection(s)" in result.output and "matched no image" in result.output and "900000003" in result.output


# 2. one corrupt image need not stop a folder: --skip-bad-images in predict and eval, and a line naming it
def test_predict_skip_bad_images_finishes_with_a_line_naming_it(photos, tiny_weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for src in photos[:2]:
        shutil.copy(src, folder / src.name)
    (folder / "zz_corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    args = [str(folder), "--weights", str(tiny_weights), "--detector", "none", "--json", str(tmp_path / "p.json")]
    stopped = _predict(*args)
    assert_one_line_error(stopped, "zz_corrupt.jpg", "--skip-bad-images")
    result = _predict(*args, "--skip-bad-images", "--out", str(tmp_path / "drawn"), "--save-heatmaps",
                      str(tmp_path / "h.npz"))
    assert result.exit_code == 0, result.output
    last = _lines(result)[-1]
    assert "skipped 1 unreadable image" in last and "zz_corrupt.jpg" in last
    records = json.loads((tmp_path / "p.json").read_text())
    assert [Path(r["image"]).name for r in records] == [p.name for p in photos[:2]]
    assert np.load(tmp_path / "h.npz")["heatmaps"].shape[0] == 2
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == sorted(f"{p.stem}.jpg" for p in photos[:2])


def test_predict_skip_bad_images_with_the_detector(photos, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(photos[0], folder / photos[0].name)
    (folder / "zz_corrupt.jpg").write_bytes(b"garbage")
    result = _predict(str(folder), "--skip-bad-images", "--out", str(tmp_path / "drawn"))
    assert result.exit_code == 0, result.output
    assert "zz_corrupt.jpg" in _lines(result)[-1]
    assert [p.name for p in (tmp_path / "drawn").iterdir()] == [f"{photos[0].stem}.jpg"]


def test_eval_skip_bad_images(fixture_data, tiny_weights, tmp_path):
    shutil.copytree(fixture_data / "images", tmp_path / "images")
    bad = sorted((tmp_path / "images").glob("*.jpg"))[0]
    bad.write_bytes(b"not a jpeg")
    args = ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images", str(tmp_path / "images"),
            "--weights", str(tiny_weights), "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "ev"),
            "--json", str(tmp_path / "s.json")]
    assert_one_line_error(runner.invoke(app, args), bad.name, "--skip-bad-images")
    result = runner.invoke(app, [*args, "--skip-bad-images"])
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())  # the header wraps (and folds long paths) at the terminal's width
    assert "skipped1unreadableimage" in flat and bad.name in flat
    assert json.loads((tmp_path / "s.json").read_text())["skipped_images"] == 1


# 3. outputs that cannot be written fail before the model loads, with the real reason
@pytest.mark.parametrize("option", ["--json", "--save-heatmaps", "--save-boxes"])
def test_unwritable_predict_output_fails_before_the_work(photos, tmp_path, monkeypatch, option):
    from hrpose_cli.engine import inference

    def no_model(*_a, **_k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(inference, "load_predictor", no_model)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    result = _predict(str(photos[0]), option, str(blocker / "x.out"))
    assert_one_line_error(result, str(blocker / "x.out"), f"{blocker} is a file, not a folder")
    assert "File exists" not in result.output
    assert_one_line_error(_predict(str(photos[0]), option, "/proc/x.out"), "/proc/x.out", "cannot write")
    assert_one_line_error(_predict(str(photos[0]), "--out", str(blocker)), str(blocker), "not a folder")
    assert blocker.read_text() == "keep me"


def test_unwritable_eval_outputs_fail_before_the_work(fixture_data, tmp_path, monkeypatch):
    from hrpose_cli.engine import inference

    monkeypatch.setattr(inference, "load_predictor", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    base = ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images", str(fixture_data / "images"),
            "--device", "cpu"]
    for option in ("--results-out", "--json"):
        assert_one_line_error(runner.invoke(app, [*base, option, "/proc/r.json"]), "/proc/r.json", "cannot write")


def test_atomic_write_names_a_parent_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(Exception, match=r"f/sub/x\.json: cannot write here \(.*f is a file, not a folder\)"):
        write_json(tmp_path / "f" / "sub" / "x.json", {})


# 4. written files get the mode the umask gives a normal file, not mkstemp's 0600
def test_outputs_are_readable_by_others_under_umask_022(tmp_path, tiny_weights):
    old = os.umask(0o022)
    try:
        assert normal_file_mode() == 0o644
        written = [write_json(tmp_path / "a.json", [1]),
                   atomic_write(tmp_path / "h.npz", lambda f: np.savez_compressed(f, x=np.zeros(2))),
                   save_checkpoint(tmp_path / "m.pt", PoseHRNet(HRNetConfig.from_arch("w16-small")),
                                   HRNetConfig.from_arch("w16-small"))]
    finally:
        os.umask(old)
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in written] == [oct(0o644)] * 3


# 6. one behaviour for out-of-range options: one line, exit 1, in every command
@pytest.mark.parametrize("args, needle", [
    (["predict", "x.jpg", "--batch", "-1"], "--batch -1"),
    (["predict", "x.jpg", "--workers", "-2"], "--workers -2"),
    (["predict", "x.jpg", "--score-threshold", "5"], "--score-threshold 5"),
    (["predict", "x.jpg", "--min-box-score", "-0.5"], "--min-box-score -0.5"),
    (["eval", "--batch", "0"], "--batch 0"),
    (["visualize-heatmaps", "--alpha", "2"], "--alpha 2"),
    (["visualize-heatmaps", "--columns", "0"], "--columns 0"),
    (["train", "--batch", "-1"], "--batch"),
])
def test_range_errors_are_one_line_exit_1(args, needle):
    assert_one_line_error(runner.invoke(app, args), needle)


def test_bbox_wholly_outside_the_image_is_an_error(photos, tiny_weights):
    h, w = cv2.imread(str(photos[0])).shape[:2]
    result = _predict(str(photos[0]), "--weights", str(tiny_weights), "--bbox", f"{w + 10},{h + 10},50,50")
    assert_one_line_error(result, photos[0].name, "wholly outside", f"{w}x{h}")


# 7. smaller things
def test_input_size_is_checked_once_for_multiples_of_32(photos):
    result = runner.invoke(app, ["predict", str(photos[0]), "--input-size", "100x100", "--device", "cpu"])
    assert_one_line_error(result, "--input-size '100x100'", "multiples of 32")


def test_help_shows_no_bool_metavar_and_train_defaults_in_brackets():
    for command in ("predict", "eval", "train", "visualize-heatmaps"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        options = [line for line in result.output.splitlines() if "--flip" in line or "--compile" in line
                   or "--skip-bad-images" in line]
        assert options and not any("<bool>" in line for line in options), options
    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: 210]" in train_help and "(default: 210)" not in train_help


def test_train_rejects_bad_options_before_the_demo_banner(tmp_path):
    result = runner.invoke(app, ["train", "--epochs", "0", "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "--epochs")
    assert "demo" not in result.output


def test_bad_config_value_names_the_file(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"epochs": "many"}))
    result = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, str(config), "epochs")


def test_visualize_heatmaps_prints_the_default_model_caveat(tmp_path):
    from hrpose_cli.model.checkpoints import default_model_note

    note = default_model_note()
    if note is None:
        pytest.skip("no default model with a caveat installed")
    result = runner.invoke(app, ["visualize-heatmaps", "--max", "1", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "default model:" in result.output and note.split()[0] in result.output


def test_eval_says_when_it_replaces_the_previous_results(fixture_data, tiny_weights, tmp_path):
    args = ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images", str(fixture_data / "images"),
            "--weights", str(tiny_weights), "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "ev")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "replacing" not in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "replacing the previous one" in " ".join(second.output.split())


# 8. the default heatmap sheet fits a laptop screen; heatmaps stay visible on dark crops
def test_default_heatmap_sheet_fits_a_laptop_screen(tmp_path):
    result = runner.invoke(app, ["visualize-heatmaps", "--max", "1", "--device", "cpu", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    (sheet,) = (tmp_path / "s").glob("*.png")
    h, w = cv2.imread(str(sheet)).shape[:2]
    assert w <= 1300 and h <= 1400, (w, h)
    full = runner.invoke(app, ["visualize-heatmaps", "--max", "1", "--device", "cpu", "--full-size",
                               "--out", str(tmp_path / "f")])
    assert full.exit_code == 0, full.output
    (big,) = (tmp_path / "f").glob("*.png")
    assert cv2.imread(str(big)).shape[1] > 1.8 * w


def test_weak_heatmap_is_outlined_on_a_dark_crop():
    from hrpose_cli.viz.heatmaps import overlay_heatmap

    dark = np.full((256, 192, 3), 15, np.uint8)
    ys, xs = np.mgrid[0:64, 0:48]
    weak = 0.2 * np.exp(-((xs - 24) ** 2 + (ys - 32) ** 2) / 8.0)  # a faint predicted peak
    plain = overlay_heatmap(dark, weak, "hot", 0.5)
    outlined = overlay_heatmap(dark, weak, "hot", 0.5, outline=True)
    assert plain.max() < 60  # nearly invisible without the outline
    assert outlined.max() > 200 and (outlined.max(axis=2) > 200).sum() > 20


# 5. a run stopped before its first epoch ended can be resumed (from the start) or started over
def test_run_interrupted_before_its_first_epoch(fixture_data, tmp_path, monkeypatch):
    from hrpose_cli.cli.train import RichReporter

    tiny = {"width": 8, "stage_modules": [1, 1, 1], "num_blocks": 1, "num_joints": 17, "input_size": [64, 64]}
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": tiny, "device": "cpu", "workers": 0, "epochs": 1, "batch": 4}))
    out = tmp_path / "run"
    base = ["train", "--config", str(cfg), "--train-ann", str(fixture_data / "person_keypoints.json"),
            "--train-images", str(fixture_data / "images"), "--out", str(out)]

    def ctrl_c(*_args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RichReporter, "epoch_start", ctrl_c)
        assert runner.invoke(app, base).exit_code == 130
    assert (out / "config.json").is_file() and not (out / "last.pt").exists()
    again = runner.invoke(app, base)
    assert_one_line_error(again, "already holds a training run", "--resume", "--exist-ok")
    resumed = runner.invoke(app, ["train", "--resume", "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "starting it from epoch 1" in resumed.output and (out / "last.pt").is_file()
    over = runner.invoke(app, [*base, "--exist-ok"])
    assert over.exit_code == 0, over.output


def test_progress_bar_never_shows_the_previous_epochs_loss():
    from hrpose_cli.cli.train import RichReporter

    reporter = RichReporter()
    reporter.epoch_start(1, 2, 10)
    reporter.step(5, 0.75, 1e-3, 100.0)
    reporter.epoch_end({"epoch": 1, "loss": 0.75, "images_per_s": 100.0, "data_wait_fraction": 0.0, "time_s": 1.0})
    reporter.epoch_start(2, 2, 10)
    assert reporter.progress.tasks[0].fields["loss"] == "..."
    reporter.close()
