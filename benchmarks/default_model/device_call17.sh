# Device call 17 (issue 15), prepared on 2026-12-06 and not yet run: call 16's w18 (S, which passed the rule but
# is too slow on the CPU to be the default) teaches the shipped w16 by function matching, `--teacher S.pt`
# (an HRNet teacher: its flip-tested heatmaps on the student's own crops are the targets of every joint). One
# GPU, two arms side by side from the shipped model, on call 16's data (3,771 persons, people/ taught by S
# alone), lr 0.0003, TL minutes each:
#   K1: annotated joints keep their GT target (--gt-weight 1), seed 32
#   K2: annotated joints half GT, half S (--gt-weight 0.5), seed 33
# Both come back in fp16 (15 MB) and are chosen here on the CPU by the rule of 2026-12-04
# (python benchmarks/choice_rule.py K1.pt K2.pt: mean agreement >= 0.7947, fashion17 train >= 0.9003).
# Against: the shipped model (0.7896) and call 16's w16 control at lr 0.0003 with MoveNet's targets (0.7862).
# Carry [".carry/fm.zip", ".whl"] (MoveNet is not needed: S labels people/), TL=7.0:
#   TL=7.0 OUT=$OUT bash benchmarks/default_model/device_call17.sh
set -u
source benchmarks/device_setup.sh || exit 1
[ -d .carry/fm ] || (cd .carry && python3 -m zipfile -e fm.zip .) || exit 1
python3 benchmarks/int8_weights.py unpack benchmarks/default_model/call16_S_w18.int8.pt /tmp/S.pt || exit 1
D=.carry/fm
L="--train-ann $D/coco/annotations.json --train-images $D/coco/images"
L="$L $L $L $L"
for s in fashion17 pelota badminton; do L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
for s in ccp humanseg cctv; do L="$L --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
COMMON="--val-ann $D/setaside/annotations.json --val-images $D/setaside/images --recipe strong --ema 0.999
 --epochs 400 --batch 128 --lr 0.0003 --warmup-epochs 2 --val-every 10 --workers 7 --log-every 1000 --save-every 50
 --time-limit ${TL:-7.0} --teacher /tmp/S.pt --teacher-mode match --teacher-flip --weights assets/hrpose_default.pt"
R=/tmp/run_$(date +%s)
hrpose train $L $COMMON --gt-weight 1 --seed 32 --out $R/K1 > $OUT/K1.log 2>&1 &
hrpose train $L $COMMON --gt-weight 0.5 --seed 33 --out $R/K2 > $OUT/K2.log 2>&1 &
wait
for r in K1 K2; do
  python3 benchmarks/export_model.py $R/$r/last.pt $OUT/$r.pt
  cp $R/$r/metrics.jsonl $OUT/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons" | tail -4
  (echo "== $r"; grep -v "━" $OUT/$r.log) >> $OUT/logs.txt; rm $OUT/$r.log
done
