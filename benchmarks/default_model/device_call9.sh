# Device call 9 (issues 14 and 15), one H200, carry [".carry", ".teacher", ".whl"] (.carry/fm: the crop pack of
# device_call7.sh, rebuilt by train_default_model.sh's split_setaside.py + pack_crops.py lines).
# Part 1 (issue 14), on the idle GPU: the GPU tests, then `hrpose predict` of a folder of real photos (the 8
# fixture and sample photos, each copied 40 times: 320 images) with the shipped detector, timed end to end.
# Part 2 (issue 15), four arms side by side for TL minutes each, all function matching + people/:
#   C3:  from the shipped model (call 8's C2), seed 15            (the chain)
#   G:   the same with --gt-weight 0.5, seed 16                  (how annotation and teacher are weighted)
#   W32: w32 from scratch, seed 17                               (student width ...)
#   S16: w16 from scratch, seed 18                               (... against w16 on the same budget)
# A w32 export (57 MB fp16) neither comes back (16 MiB a file) nor fits the next carry, so the width arms are
# compared here by their own set-aside validation (metrics.jsonl) and not continued.
set -u
source benchmarks/device_setup.sh || exit 1
python3 -m pytest -q tests/test_gpu.py 2>&1 | tail -3
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
 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2 --val-every 10 --workers 3 --log-every 1000
 --time-limit ${TL:-5.5} --teacher .teacher/movenet-thunder.json --teacher-mode match"
R=/tmp/run_$(date +%s)
hrpose train $COMMON --weights ${INIT:-assets/hrpose_default.pt} --seed 15 --out $R/C3 > $OUT/C3.log 2>&1 &
hrpose train $COMMON --weights ${INIT:-assets/hrpose_default.pt} --gt-weight 0.5 --seed 16 --out $R/G > $OUT/G.log 2>&1 &
hrpose train $COMMON --arch w32 --seed 17 --out $R/W32 > $OUT/W32.log 2>&1 &
hrpose train $COMMON --arch w16 --seed 18 --out $R/S16 > $OUT/S16.log 2>&1 &
wait
for r in C3 G W32 S16; do
  case $r in C3|G) python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt;; esac
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -4
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
