"""Keep two of every three frames of a video-frame set (by image id order), for a smaller device carry.

    python benchmarks/thin_frames.py DATA_DIR/badminton/annotations/person_keypoints.json OUT.json

Consecutive broadcast frames are near-duplicates, so dropping every third one costs little; the default model's
sixth cycle trained on badminton thinned this way (its images re-encoded at JPEG quality 40) so that the MoveNet
teacher fitted in the device carry beside the data.
"""

import sys
from pathlib import Path

from hrpose_cli.data.coco import read_json
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/thin_frames.py ANN OUT.json")
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = read_json(source)
    images = data.get("images") if isinstance(data, dict) else None
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise HrposeError(f"{source}: not COCO annotations (no 'images' and 'annotations' lists)")
    if not all(isinstance(img, dict) and isinstance(img.get("id"), int) for img in images) or \
            not all(isinstance(ann, dict) and "image_id" in ann for ann in annotations):
        raise HrposeError(f"{source}: every image needs an integer 'id' and every annotation an 'image_id'")
    dropped = {img["id"] for k, img in enumerate(sorted(images, key=lambda i: i["id"])) if k % 3 == 2}
    data["images"] = [img for img in images if img["id"] not in dropped]
    data["annotations"] = [ann for ann in annotations if ann["image_id"] not in dropped]
    write_json(out, data)
    print(f"{out}: {len(data['images'])} images, {len(data['annotations'])} people")


if __name__ == "__main__":
    try:
        main()
    except HrposeError as err:
        sys.exit(f"error: {err}")
