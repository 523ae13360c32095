# Device call 8 (issue 15): two arms side by side on ONE H200, both from call 7's arm C (function matching +
# people/, the highest teacher agreement of call 7), copied over assets/hrpose_default.pt for the call (a
# tracked file travels with the tree); the same data pack, carry and schedule as call 7:
#   C2: --teacher-mode match plus people/, seed 13 (call 7's C again: a longer schedule)
#   D:  the same plus --mixup 0.3, seed 14
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
 --workers 7 --log-every 1000 --time-limit ${TL:-7.0} --teacher .teacher/movenet-thunder.json"
R=/tmp/run_$(date +%s)
hrpose train $COMMON $U --teacher-mode match --seed 13 --out $R/C2 > $OUT/C2.log 2>&1 &
hrpose train $COMMON $U --teacher-mode match --mixup 0.3 --seed 14 --out $R/D > $OUT/D.log 2>&1 &
wait
for r in C2 D; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -6
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
