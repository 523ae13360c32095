"""--precision: bf16 on the CPU gives the fp32 keypoints to within bf16's rounding, and bad names are one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from hrpose_cli.cli.app import app
from hrpose_cli.engine.runtime import precision_amp
from hrpose_cli.errors import HrposeError

runner = CliRunner()


def test_precision_names_map_to_autocast():
    assert (precision_amp("auto"), precision_amp("fp32"), precision_amp("bf16")) == (None, False, True)
    with pytest.raises(HrposeError, match="expected one of auto, fp32, bf16"):
        precision_amp("fp16")


def test_bf16_on_the_cpu_gives_the_fp32_numbers_on_real_images(fixture_data, tmp_path):
    """The default model on the fixture's real photos: eval's AP and predict's joints agree across precisions,
    and each run reports the precision it ran."""
    ann, images = str(fixture_data / "person_keypoints.json"), str(fixture_data / "images")
    data = json.loads((fixture_data / "person_keypoints.json").read_text())
    first = data["images"][0]
    people = [a for a in data["annotations"] if a["image_id"] == first["id"] and a["num_keypoints"] > 0]
    boxes = [arg for a in people for arg in ("--bbox", ",".join(f"{v:.1f}" for v in a["bbox"]))]
    stats, joints = {}, {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        result = runner.invoke(app, ["eval", "--ann", ann, "--images", images, "--device", "cpu", "--precision",
                                     precision, "--json", str(out), "--out", str(tmp_path / precision)])
        assert result.exit_code == 0, result.output
        stats[precision] = json.loads(out.read_text())
        assert f"256x192, {precision})" in " ".join(result.output.split())
        out = tmp_path / f"predict_{precision}.json"
        result = runner.invoke(app, ["predict", str(fixture_data / "images" / first["file_name"]), "--device", "cpu",
                                     "--precision", precision, *boxes, "--json", str(out)])
        assert result.exit_code == 0, result.output
        joints[precision] = np.array([p["keypoints"] for p in json.loads(out.read_text())]).reshape(-1, 17, 3)
    assert stats["fp32"]["precision"] == "fp32" and stats["bf16"]["precision"] == "bf16"
    assert abs(stats["bf16"]["AP"] - stats["fp32"]["AP"]) < 0.02, (stats["bf16"]["AP"], stats["fp32"]["AP"])
    assert joints["fp32"].shape == joints["bf16"].shape == (len(people), 17, 3) and people
    confident = joints["fp32"][..., 2] > 0.3
    moved = np.linalg.norm(joints["bf16"][..., :2] - joints["fp32"][..., :2], axis=-1)[confident]
    assert np.median(moved) < 2.0, moved  # pixels of the photo: one heatmap cell is 4+ of them


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_unknown_precision_is_one_line(command, fixture_data):
    target = [str(sorted((fixture_data / "images").glob("*.jpg"))[0])] if command == "predict" else []
    result = runner.invoke(app, [command, *target, "--device", "cpu", "--precision", "fp16"])
    assert_one_line_error(result, "--precision 'fp16'", "auto, fp32, bf16")
