"""Copy the training data into DEST for a device run, JPEGs re-encoded smaller so that they fit its carry limit.

    python3 benchmarks/pack_device_data.py ../shared/data .carry/data [--quality 75]

Annotations are copied as they are (no image is resized, so every coordinate still holds). Measure AP on the
original images, not on these.
"""

import argparse
import shutil
import sys
from pathlib import Path

import cv2

from hrpose_cli.errors import HrposeError

SETS = ("coco-real", "fashion17", "pelota", "badminton")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--quality", type=int, default=75)
    args = parser.parse_args()
    missing = [name for name in SETS if not (args.src / name / "images").is_dir()]
    if missing:
        raise HrposeError(f"{args.src}: no {', '.join(missing)} image folder(s) in it (expected ../shared/data)")
    total = 0
    for name in SETS:
        shutil.copytree(args.src / name / "annotations", args.dest / name / "annotations", dirs_exist_ok=True)
        out = args.dest / name / "images"
        out.mkdir(parents=True, exist_ok=True)
        for image_path in sorted((args.src / name / "images").iterdir()):
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            if not ok:
                raise SystemExit(f"{image_path}: could not re-encode")
            (out / image_path.name).write_bytes(data.tobytes())
            total += len(data)
    print(f"{total / 2**20:.1f} MiB of images in {args.dest}")


if __name__ == "__main__":
    try:
        main()
    except (HrposeError, OSError) as err:  # one line, as the CLI's errors
        sys.exit(f"error: {err}")
