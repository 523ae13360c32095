#!/usr/bin/env bash
# End-to-end training speed on one GPU: `hrpose train` on real JPEGs (decode, GPU warps/augmentation/targets,
# forward, backward, Adam), per epoch from metrics.jsonl, beside the official recipe's 218 images/s
# (W32 256x192, fp32, batch 32, network alone, HRNET_SPEC.md).
#   bash benchmarks/bench_train.sh DATA_DIR ARCH BATCH EPOCHS [extra hrpose train options]
# DATA_DIR holds coco-real/ and fashion17/ as in ../shared/data.
set -euo pipefail
D=$1; ARCH=$2; BATCH=$3; EPOCHS=$4; shift 4
F="--train-ann $D/fashion17/annotations/person_keypoints.json --train-images $D/fashion17/images"
C="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
RUN=$(mktemp -d)/run
# Each set repeated so that an epoch is long enough (~4,600 persons) to time.
hrpose train $F $F $F $F $C $C $C $C --arch "$ARCH" --batch "$BATCH" --epochs "$EPOCHS" --out "$RUN" "$@" > "$RUN.log" 2>&1 \
  || { tail -5 "$RUN.log"; exit 1; }
python3 - "$RUN/metrics.jsonl" "$ARCH" "$BATCH" "$*" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
steady = rows[1:] or rows
ips = sum(r["images_per_s"] for r in steady) / len(steady)
wait = sum(r["data_wait_fraction"] for r in steady) / len(steady)
print(f"train {sys.argv[2]} batch {sys.argv[3]} {sys.argv[4]}: first epoch {rows[0]['time_s']:.1f} s; "
      f"after it {ips:.0f} images/s end to end, data wait {wait:.1%}, peak GPU memory {steady[-1]['gpu_mem_gib']:.1f} GiB "
      f"({ips / 218:.1f}x the official 218 images/s)")
PY
