"""Set aside, before any training, the images on which function-matching runs are compared and chosen.

    python3 benchmarks/split_setaside.py DATA_DIR OUT_DIR

Labelled: every 5th image (by id) of coco-real train and of pelota is set aside; the rest is what the runs
train on. Writes OUT_DIR/coco_train_rest.json, pelota_rest.json, and the set-aside part as one set:
OUT_DIR/setaside.json with its images (hard links, else copies) in OUT_DIR/setaside_images. The shipped model
of the earlier chain trained on all of these images (it scores AP 0.95 there), so they can only compare new
runs with one another, and favour the runs that move least from it.

Unlabelled: every 10th image of people/ccp and people/humanseg (photos no model here has trained on) is set
aside as OUT_DIR/people_setaside.json (images in OUT_DIR/people_setaside_images), the rest in
people_ccp_rest.json, people_humanseg_rest.json; people/cctv is not split (people_cctv_rest.json is all of
it). `benchmarks/teacher_labels.py` labels the set-aside boxes with MoveNet for the choice rule of
benchmarks/default_model/README.md. Deterministic; coco-real val and fashion17's held-out images are not touched.
"""

import json
import os
import shutil
import sys
from pathlib import Path

SETS = {"coco": ("coco-real/annotations/person_keypoints_train.json", "coco-real/images"),
        "pelota": ("pelota/annotations/person_keypoints.json", "pelota/images")}
REST = {"coco": "coco_train_rest.json", "pelota": "pelota_rest.json"}
PEOPLE = {"ccp": 10, "humanseg": 10, "cctv": 0}  # every Nth image set aside (0: none)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python3 benchmarks/split_setaside.py DATA_DIR OUT_DIR")
    data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    for ann, images in SETS.values():
        if not (data_dir / ann).is_file() or not (data_dir / images).is_dir():
            sys.exit(f"error: {data_dir / ann}: not found (DATA_DIR is laid out as ../shared/data)")
    (out / "setaside_images").mkdir(parents=True, exist_ok=True)
    merged = {"images": [], "annotations": [], "categories": None}
    for name, (ann, images) in SETS.items():
        data = json.loads((data_dir / ann).read_text())
        held = {img["id"] for img in data["images"] if img["id"] % 5 == 0}
        rest = dict(data)
        rest["images"] = [img for img in data["images"] if img["id"] not in held]
        rest["annotations"] = [a for a in data["annotations"] if a["image_id"] not in held]
        (out / REST[name]).write_text(json.dumps(rest))
        merged["categories"] = data["categories"]
        merged["images"] += [img for img in data["images"] if img["id"] in held]
        merged["annotations"] += [a for a in data["annotations"] if a["image_id"] in held]
        for img in data["images"]:
            if img["id"] in held:
                target = out / "setaside_images" / img["file_name"]
                if not target.exists():
                    try:
                        os.link(data_dir / images / img["file_name"], target)
                    except OSError:
                        shutil.copy(data_dir / images / img["file_name"], target)
        people = sum(1 for a in data["annotations"] if a["image_id"] in held and max(a["keypoints"][2::3]) > 0 and not a["iscrowd"])
        print(f"{name}: {len(held)} images set aside ({people} people), {len(rest['images'])} left for training")
    (out / "setaside.json").write_text(json.dumps(merged))
    (out / "people_setaside_images").mkdir(parents=True, exist_ok=True)
    merged = {"images": [], "annotations": [], "categories": None}
    for name, every in PEOPLE.items():
        folder = data_dir / "people" / name
        if not (folder / "annotations" / "persons.json").is_file():
            sys.exit(f"error: {folder / 'annotations' / 'persons.json'}: not found (DATA_DIR is laid out as ../shared/data)")
        data = json.loads((folder / "annotations" / "persons.json").read_text())
        held = {img["id"] for img in data["images"] if every and img["id"] % every == 0}
        rest = dict(data)
        rest["images"] = [img for img in data["images"] if img["id"] not in held]
        rest["annotations"] = [a for a in data["annotations"] if a["image_id"] not in held]
        (out / f"people_{name}_rest.json").write_text(json.dumps(rest))
        merged["categories"] = data["categories"]
        merged["images"] += [img for img in data["images"] if img["id"] in held]
        merged["annotations"] += [a for a in data["annotations"] if a["image_id"] in held]
        for img in data["images"]:
            target = out / "people_setaside_images" / img["file_name"]
            if img["id"] in held and not target.exists():
                try:
                    os.link(folder / "images" / img["file_name"], target)
                except OSError:
                    shutil.copy(folder / "images" / img["file_name"], target)
        boxes = sum(1 for a in data["annotations"] if a["image_id"] in held and not a.get("iscrowd"))
        print(f"people/{name}: {len(held)} images set aside ({boxes} boxes), {len(rest['images'])} left for training")
    (out / "people_setaside.json").write_text(json.dumps(merged))


if __name__ == "__main__":
    main()
