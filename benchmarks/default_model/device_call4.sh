# Device call 4: a fourth lr cycle from the shipped cycle-3 model (assets/hrpose_default.pt), two seeds side by side
# (one per GPU), then the CUDA tests.
set -u
source benchmarks/device_setup.sh || exit 1
D=.carry/data
python3 benchmarks/split_fashion17.py $D/fashion17/annotations/person_keypoints.json /tmp/splits
COCO="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
COMMON="$COCO $COCO $COCO $COCO --train-ann /tmp/splits/fashion17_train.json --train-images $D/fashion17/images
 --train-ann $D/pelota/annotations/person_keypoints.json --train-images $D/pelota/images
 --train-ann $D/badminton/annotations/person_keypoints.json --train-images $D/badminton/images
 --val-ann $D/coco-real/annotations/person_keypoints_val.json --val-images $D/coco-real/images
 --weights ${INIT:-assets/hrpose_default.pt} --recipe strong --ema 0.999 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2
 --val-every 10 --workers 14 --log-every 1000 --time-limit ${TL:-7.0}"
R=/tmp/run_$(date +%s)
CUDA_VISIBLE_DEVICES=0 hrpose train $COMMON --seed ${SEED_A:-4} --out $R/A > $OUT/A.log 2>&1 &
CUDA_VISIBLE_DEVICES=1 hrpose train $COMMON --seed ${SEED_B:-5} --out $R/B > $OUT/B.log 2>&1 &
wait
for r in A B; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  python3 benchmarks/export_model.py $R/$r/best.pt $OUT/${r}_best.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror" | tail -6
  grep -v "━" $OUT/$r.log >> $OUT/logs.txt; rm $OUT/$r.log
done
[ -n "${TESTS:-}" ] && python3 -m pytest -q tests/test_gpu.py 2>&1 | tail -3
true
