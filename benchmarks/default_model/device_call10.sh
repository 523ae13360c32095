# Device call 10 (issues 14 and 15), one H200, carry [".carry", ".teacher", ".whl"], with call 9's C3 (the
# highest teacher agreement of call 9: 0.916, G 0.914) copied over assets/hrpose_default.pt for the call.
# Part 1 (issue 14): as in call 9 (its predict had stopped on a photo where nobody was found, since fixed).
# Part 2 (issue 15), two arms side by side for TL minutes each, function matching + people/, from C3:
#   C4:  the same recipe, seed 19
#   C4L: the same with --lr 0.0003 (each cycle restarts at 0.001; a lower peak may keep more of the last), seed 20
set -u
source benchmarks/device_setup.sh || exit 1
P=/tmp/photos; mkdir -p $P
for i in $(seq 40); do for f in tests/data/images/*.jpg assets/sample/images/*.jpg; do cp $f $P/${i}_$(basename $f); done; done
S=$(date +%s.%N)
hrpose predict $P --json /tmp/pred.json --out /tmp/pred_out > /tmp/pred.log 2>&1; echo "predict rc $?"
E=$(date +%s.%N)
grep -v "│" /tmp/pred.log | tail -4
python3 -c "
import json,sys; r=json.load(open('/tmp/pred.json')); n=len(set(x['image_id'] for x in r)) if r and 'image_id' in r[0] else None
print('predict: %d person records, wall %.1f s, %.0f images/s, %.0f persons/s (start-up included)' % (len(r), $E-$S, 320/($E-$S), len(r)/($E-$S)))"
D=.carry/fm
L="--train-ann $D/coco/annotations.json --train-images $D/coco/images"
L="$L $L $L $L"
for s in fashion17 pelota badminton; do L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
for s in ccp humanseg cctv; do L="$L --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
COMMON="$L --val-ann $D/setaside/annotations.json --val-images $D/setaside/images --recipe strong --ema 0.999
 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2 --val-every 10 --workers 7 --log-every 1000
 --time-limit ${TL:-6.6} --teacher .teacher/movenet-thunder.json --teacher-mode match"
R=/tmp/run_$(date +%s)
hrpose train $COMMON --weights assets/hrpose_default.pt --seed 19 --out $R/C4 > $OUT/C4.log 2>&1 &
hrpose train $COMMON --weights assets/hrpose_default.pt --lr 0.0003 --seed 20 --out $R/C4L > $OUT/C4L.log 2>&1 &
wait
for r in C4 C4L; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -4
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
