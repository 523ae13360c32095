"""One shard of the device data pack that mixes every source: a chain link on one source's shard pulls the
student towards it (call 13), so each shard holds every part's K-th image of every source.

    python benchmarks/mixed_shard.py .carry/fm .carry/w32_m1.zip --part 0 --of 3   # m2: --part 1, m3: --part 2
    python benchmarks/mixed_shard.py .carry/fm .carry/w32_f1.zip --part 0 --whole fashion17   # fashion17 in every shard

FM_DIR holds one folder per source (annotations.json + images/, as benchmarks/pack_device_data.py writes them).
coco-real train (`coco`) is small and goes whole into every shard, as does every source named by --whole (calls
14-15: a link that saw a third of fashion17 lost 0.10 AP on its held-out images); the set-aside and the video
frames stay out.
"""

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import BinaryIO

from hrpose_cli.errors import HrposeError
from hrpose_cli.files import atomic_write

SOURCES = ("coco", "fashion17", "pelota", "badminton", "ccp", "humanseg", "cctv")


def build(source: Path, target: Path, part: int, parts: int, whole: tuple[str, ...] = ()) -> dict[str, int]:
    """Write the shard's zip (folders named as the sources); returns the persons per source."""
    if not 0 <= part < parts:
        raise HrposeError(f"--part {part}: must be from 0 to {parts - 1} (--of {parts})")
    unknown = sorted(set(whole) - set(SOURCES))
    if unknown:
        raise HrposeError(f"--whole {unknown[0]}: not a source (expected one of {', '.join(SOURCES)})")
    whole = ("coco", *whole)
    sources = {name: source / name / "annotations.json" for name in SOURCES}
    for ann in sources.values():
        if not ann.is_file():
            raise HrposeError(f"{ann}: missing (FM_DIR holds one folder per source)")
    persons: dict[str, int] = {}

    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as out:
            for name, ann in sources.items():
                data = json.loads(ann.read_text())
                images = data["images"] if name in whole else data["images"][part::parts]
                ids = {image["id"] for image in images}
                annotations = [a for a in data["annotations"] if a["image_id"] in ids]
                for image in images:
                    out.write(source / name / "images" / image["file_name"], f"{name}/images/{image['file_name']}")
                out.writestr(f"{name}/annotations.json", json.dumps(dict(data, images=images, annotations=annotations)))
                persons[name] = len(annotations)

    atomic_write(target, write)
    return persons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="FM_DIR: one folder per source")
    parser.add_argument("target", type=Path, help="the shard's zip")
    parser.add_argument("--part", type=int, required=True)
    parser.add_argument("--of", type=int, default=3, dest="parts")
    parser.add_argument("--whole", nargs="*", default=[], help="sources that go whole into every shard (coco always)")
    args = parser.parse_args()
    try:
        persons = build(args.source, args.target, args.part, args.parts, tuple(args.whole))
    except (HrposeError, OSError, json.JSONDecodeError) as err:
        sys.exit(f"error: {err}")
    print(f"{args.target}: {args.target.stat().st_size / 2**20:.1f} MiB; persons "
          + ", ".join(f"{k} {v}" for k, v in persons.items()))


if __name__ == "__main__":
    main()
