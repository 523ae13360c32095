# Device call 1: two arms from scratch, one per GPU. A: strong + EMA + MoveNet teacher (features 0.02). B: strong + EMA, no teacher.
set -u
source benchmarks/device_setup.sh || exit 1
D=.carry/data
python3 benchmarks/split_fashion17.py $D/fashion17/annotations/person_keypoints.json /tmp/splits
COCO="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
COMMON="$COCO $COCO $COCO $COCO --train-ann /tmp/splits/fashion17_train.json --train-images $D/fashion17/images
 --train-ann $D/pelota/annotations/person_keypoints.json --train-images $D/pelota/images
 --train-ann $D/badminton/annotations/person_keypoints.json --train-images $D/badminton/images
 --val-ann $D/coco-real/annotations/person_keypoints_val.json --val-images $D/coco-real/images
 --arch w16 --input-size 256x192 --recipe strong --ema 0.999 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 3
 --val-every 10 --seed 0 --workers 14 --log-every 1000 --time-limit ${TL:-7.7}"
R=/tmp/run_$(date +%s)
CUDA_VISIBLE_DEVICES=0 hrpose train $COMMON --teacher .teacher/movenet-thunder.json --distill-features 0.02 --out $R/A > $OUT/A.log 2>&1 &
CUDA_VISIBLE_DEVICES=1 hrpose train $COMMON --out $R/B > $OUT/B.log 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime
wait
VAL="--ann $D/coco-real/annotations/person_keypoints_val.json --images $D/coco-real/images"
for r in A B; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  python3 benchmarks/export_model.py $R/$r/last.pt $R/${r}_raw.pt --raw-weights
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait" | tail -8
  echo "== $r raw weights (no EMA):"; hrpose eval $VAL --weights $R/${r}_raw.pt --out $R/ev 2>&1 | grep -E "AP @|persons/s"
  grep -v "━" $OUT/$r.log >> $OUT/logs.txt; rm $OUT/$r.log
done
