#!/usr/bin/env bash
# Trains the shipped default model (assets/hrpose_default.pt) exactly as it was trained, then exports it
# (fp16, no optimizer state) and measures it with `hrpose eval`.
#   bash benchmarks/train_default_model.sh DATA_DIR RUN_DIR [EPOCHS]
# DATA_DIR holds coco-real/, fashion17/ and pelota/ as in ../shared/data. On the device: ~9 minutes on one H100.
set -euo pipefail
D=$1
RUN=$2
EPOCHS=${3:-220}
SPLITS=${RUN}_splits
python3 benchmarks/split_fashion17.py "$D/fashion17/annotations/person_keypoints.json" "$SPLITS"
COCO="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
# coco-real train is repeated 4 times so that COCO's varied people weigh about as much as fashion17's standing ones.
hrpose train $COCO $COCO $COCO $COCO \
  --train-ann "$SPLITS/fashion17_train.json" --train-images "$D/fashion17/images" \
  --train-ann "$D/pelota/annotations/person_keypoints.json" --train-images "$D/pelota/images" \
  --val-ann "$D/coco-real/annotations/person_keypoints_val.json" --val-images "$D/coco-real/images" \
  --arch w16 --input-size 256x192 --recipe seed --epochs "$EPOCHS" --batch 128 --lr 0.001 --warmup-epochs 5 \
  --compile --val-every 25 --seed 0 --out "$RUN"
python3 benchmarks/export_model.py "$RUN/best.pt" "$RUN/hrpose_default.pt"
for flip in --flip --no-flip; do
  hrpose eval --ann "$D/coco-real/annotations/person_keypoints_val.json" --images "$D/coco-real/images" \
    --weights "$RUN/hrpose_default.pt" $flip --json "$RUN/eval_coco_val$flip.json" --out "$RUN/eval"
done
hrpose eval --ann "$D/coco-real/annotations/person_keypoints_val.json" --images "$D/coco-real/images" \
  --weights "$RUN/hrpose_default.pt" --decode dark --json "$RUN/eval_coco_val_dark.json" --out "$RUN/eval"
hrpose eval --ann "$SPLITS/fashion17_holdout.json" --images "$D/fashion17/images" \
  --weights "$RUN/hrpose_default.pt" --json "$RUN/eval_fashion17_holdout.json" --out "$RUN/eval"
hrpose eval --ann "$D/fashion17/annotations/person_keypoints.json" --images "$D/fashion17/images" \
  --weights "$RUN/hrpose_default.pt" --json "$RUN/eval_fashion17_all.json" --out "$RUN/eval"
