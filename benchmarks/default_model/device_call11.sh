# Device call 11 (issue 15), one H200, carry [".carry/fm.zip", ".teacher", ".whl"] (the pack as one stored zip: its 3,121
# small files count a disk block each against the 64 MiB), from the shipped model (call 9's
# C3, assets/hrpose_default.pt). Two arms side by side on the one GPU, TL minutes each, function matching as in
# calls 7-10 (train_default_model.sh, cycle 11):
#   N: people/ plus the people the labelled sets leave out and vtest's walkers (benchmarks/unlabelled_people.py,
#      packed by pack_crops.py --unlabelled), seed 21
#   C: the control, calls 7-10's data alone (people/ only), seed 22: what the new people give, at equal GPU time
set -u
source benchmarks/device_setup.sh || exit 1
[ -d .carry/fm ] || (cd .carry && python3 -m zipfile -e fm.zip .) || exit 1
D=.carry/fm
L="--train-ann $D/coco/annotations.json --train-images $D/coco/images"
L="$L $L $L $L"
for s in fashion17 pelota badminton; do L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
for s in ccp humanseg cctv; do L="$L --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
NEW=""
for s in coco_u pelota_u badminton_u vtest; do
  NEW="$NEW --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
COMMON="--val-ann $D/setaside/annotations.json --val-images $D/setaside/images --recipe strong --ema 0.999
 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2 --val-every 10 --workers 7 --log-every 1000
 --time-limit ${TL:-7.0} --teacher .teacher/movenet-thunder.json --teacher-mode match --weights assets/hrpose_default.pt"
R=/tmp/run_$(date +%s)
hrpose train $L $NEW $COMMON --seed 21 --out $R/N > $OUT/N.log 2>&1 &
hrpose train $L $COMMON --seed 22 --out $R/C > $OUT/C.log 2>&1 &
wait
for r in N C; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -4
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
