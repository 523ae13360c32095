"""Split fashion17 into a training part and a held-out part, so the default model's fashion17 AP is measured
on people it never saw. Deterministic: every 5th image (by id) is held out.

    python benchmarks/split_fashion17.py DATA_DIR/fashion17/annotations/person_keypoints.json OUT_DIR
writes OUT_DIR/fashion17_train.json (800 images) and OUT_DIR/fashion17_holdout.json (200 images).
"""

import json
import sys
from pathlib import Path


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(source.read_text())
    held = {img["id"] for img in data["images"] if img["id"] % 5 == 0}
    out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("fashion17_train.json", lambda i: i not in held), ("fashion17_holdout.json", lambda i: i in held)):
        part = dict(data)
        part["images"] = [img for img in data["images"] if keep(img["id"])]
        part["annotations"] = [ann for ann in data["annotations"] if keep(ann["image_id"])]
        (out / name).write_text(json.dumps(part))
        print(f"{out / name}: {len(part['images'])} images, {len(part['annotations'])} people")


if __name__ == "__main__":
    main()
