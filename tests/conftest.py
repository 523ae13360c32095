"""Shared test fixtures: the real data beside the project (skipped when absent) and the shipped fixture."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data"
SHARED_DATA = Path(os.environ.get("HRPOSE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $HRPOSE_SHARED_DATA); tests that need it skip with a reason when it is absent."""
    if not (SHARED_DATA / "coco-real" / "annotations").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set HRPOSE_SHARED_DATA to run this test)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixture_data() -> Path:
    """tests/data: a few COCO images that may ship, with their annotations and attribution."""
    return FIXTURE


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def assert_one_line_error(result, *needles: str) -> None:
    """A CLI result that failed with exit 1 and one line naming the problem, without a traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output

TEACHER = Path(os.environ.get("HRPOSE_TEACHER", REPO / ".teacher" / "movenet-thunder.json"))


@pytest.fixture(scope="session")
def teacher_json() -> Path:
    """MoveNet Thunder's TensorFlow.js files (benchmarks/fetch_teacher.sh; .ci/run fetches them into .teacher/)."""
    if not TEACHER.is_file():
        pytest.skip(f"MoveNet teacher not found at {TEACHER} (run: bash benchmarks/fetch_teacher.sh .teacher, or set HRPOSE_TEACHER)")
    return TEACHER


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small randomly initialised hrpose checkpoint (w16-small), for commands that need weights but not accuracy."""
    from hrpose_cli.model.checkpoints import save_checkpoint
    from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

    config = HRNetConfig.from_arch("w16-small")
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, PoseHRNet(config), config)
    return path
