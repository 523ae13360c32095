# Device call 6: a further lr cycle from call 5's seed-6 model with the MoveNet teacher: arm A its features
# (weight 0.002) and its labels for unlabelled joints, arm B the labels only. The data pack leaves out fashion17's
# held-out images and keeps two of every three badminton frames, re-encoded at JPEG quality 40, so that the teacher fits in the carry.
set -u
source benchmarks/device_setup.sh || exit 1
D=.carry/d6
python3 benchmarks/split_fashion17.py $D/fashion17/annotations/person_keypoints.json /tmp/splits
COCO="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
COMMON="$COCO $COCO $COCO $COCO --train-ann /tmp/splits/fashion17_train.json --train-images $D/fashion17/images
 --train-ann $D/pelota/annotations/person_keypoints.json --train-images $D/pelota/images
 --train-ann $D/badminton/annotations/person_keypoints.json --train-images $D/badminton/images
 --val-ann $D/coco-real/annotations/person_keypoints_val.json --val-images $D/coco-real/images
 --weights .carry/init.pt --recipe strong --ema 0.999 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2
 --val-every 10 --workers 14 --log-every 1000 --time-limit ${TL:-7.0} --teacher .carry/teacher/movenet-thunder.json"
R=/tmp/run_$(date +%s)
CUDA_VISIBLE_DEVICES=0 hrpose train $COMMON --distill-features 0.002 --seed 8 --out $R/A > $OUT/A.log 2>&1 &
CUDA_VISIBLE_DEVICES=1 hrpose train $COMMON --seed 9 --out $R/B > $OUT/B.log 2>&1 &
wait
for r in A B; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  python3 benchmarks/export_model.py $R/$r/best.pt $OUT/${r}_best.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|eacher" | tail -8
  grep -v "━" $OUT/$r.log >> $OUT/logs.txt; rm $OUT/$r.log
done
