# Device call 7 (issue 15): function matching, three arms side by side on ONE H200, each from the shipped
# model (assets/hrpose_default.pt, cycle 6) with the same data pack and schedule:
#   A: --teacher-mode fill (today's recipe: the teacher labels unlabelled joints only), labelled sets only
#   B: --teacher-mode match (function matching on the student's own augmented crop), labelled sets only
#   C: --teacher-mode match plus people/ (boxes without keypoints, taught by the teacher alone)
# Carry [".carry/fm", ".teacher", ".whl"]; .carry/fm is benchmarks/pack_crops.py's pack of the sets as
# benchmarks/train_default_model.sh makes it (set-aside images left out). Validation: the labelled set-aside split.
set -u
source benchmarks/device_setup.sh || exit 1
D=.carry/fm
INIT=${INIT:-assets/hrpose_default.pt}
L="--train-ann $D/coco/annotations.json --train-images $D/coco/images"
L="$L $L $L $L"
for s in fashion17 pelota badminton; do L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
U=""
for s in ccp humanseg cctv; do U="$U --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
COMMON="$L --val-ann $D/setaside/annotations.json --val-images $D/setaside/images --weights $INIT
 --recipe strong --ema 0.999 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2 --val-every 10
 --workers 4 --log-every 1000 --time-limit ${TL:-7.0} --teacher .teacher/movenet-thunder.json"
R=/tmp/run_$(date +%s)
hrpose train $COMMON --seed 10 --out $R/A > $OUT/A.log 2>&1 &
hrpose train $COMMON --teacher-mode match --seed 11 --out $R/B > $OUT/B.log 2>&1 &
hrpose train $COMMON $U --teacher-mode match --seed 12 --out $R/C > $OUT/C.log 2>&1 &
wait
for r in A B C; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -6
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
