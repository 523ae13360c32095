"""Keep two of every three frames of a video-frame set (by image id order), for a smaller device carry.

    python benchmarks/thin_frames.py DATA_DIR/badminton/annotations/person_keypoints.json OUT.json

Consecutive broadcast frames are near-duplicates, so dropping every third one costs little; the default model's
sixth cycle trained on badminton thinned this way (its images re-encoded at JPEG quality 40) so that the MoveNet
teacher fitted in the device carry beside the data.
"""

import json
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/thin_frames.py ANN OUT.json")
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(source.read_text())
    dropped = {img["id"] for k, img in enumerate(sorted(data["images"], key=lambda i: i["id"])) if k % 3 == 2}
    data["images"] = [img for img in data["images"] if img["id"] not in dropped]
    data["annotations"] = [ann for ann in data["annotations"] if ann["image_id"] not in dropped]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    print(f"{out}: {len(data['images'])} images, {len(data['annotations'])} people")


if __name__ == "__main__":
    main()
