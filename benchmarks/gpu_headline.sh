#!/usr/bin/env bash
# The GPU path of issue 13: train 128² diffusion priors at the published widths and run the headline at 128² with
# 500 points beside the exact posterior (`bayes`) and converged MAP, in one script that fits 8 minutes on one GPU.
#
#   bash benchmarks/gpu_headline.sh                       # GPU (or CPU) at the published size
#   RES=16 N_TRAIN=20 EPOCHS=1 N_TEST=1 N_OBS=26 UNO_WIDTH=8 UNET_WIDTH=8 STEPS=4 SAMPLES=4 \
#       OUT=/tmp/gh bash benchmarks/gpu_headline.sh        # the same script at a tiny size (tests/test_guidance_options.py)
#
# Stages: `pdeinv generate` (training pairs, seed 12345: disjoint from the harness's seed-0 test samples),
# `pdeinv train diffusion --arch uno` (FunDPS prior: UNO, GRF noise, hidden width 64 = FunDPS's cbase 64) and
# `--arch unet` (DiffusionPDE prior: U-Net, white noise, base width 128 = EDM's ddpmpp cbase 128), then
# `pdeinv benchmark` of bayes, map, fundps / diffusionpde / daps on those checkpoints (`NAME[model=PATH]`), per task
# and mode.  Results: $OUT/<task>-<mode>-<tag>.json/.md (the harness's files, device named in them) and
# $OUT/run-<tag>.md (stage timings, the commands, the machine); <tag> = headline-<device type> (cuda or cpu).
#
# Time budget: BUDGET_S (default 480 s).  Each stage is checked against it before it starts; a stage that no longer
# fits is skipped and the run says so in run-<tag>.md (the reference rows bayes/map always run).
set -euo pipefail

T0=$(date +%s)
PY=${PYTHON:-python}
RES=${RES:-128}
N_TRAIN=${N_TRAIN:-1000}
EPOCHS=${EPOCHS:-20}
BATCH=${BATCH:-32}
N_TEST=${N_TEST:-10}
N_OBS=${N_OBS:-500}
TASKS=${TASKS:-poisson}
MODES=${MODES:-inverse,forward}
UNO_WIDTH=${UNO_WIDTH:-64}
UNET_WIDTH=${UNET_WIDTH:-128}
STEPS=${STEPS:-40}          # DiffusionPDE EDM steps; FunDPS and DAPS take a quarter
SAMPLES=${SAMPLES:-16}
METHODS_DIFF=${METHODS_DIFF:-fundps,diffusionpde,daps}
BUDGET_S=${BUDGET_S:-480}
OUT=${OUT:-benchmarks/results/gpu_headline}
WORK=${WORK:-${PDEINV_CACHE:-$HOME/.cache/pdeinv}/gpu_headline}   # data and checkpoints: not in the results
CACHE=${CACHE:-$WORK/cache}
DEVICE=${DEVICE:-$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")}
TAG=${TAG:-headline-${DEVICE%%:*}}
OBS=$(awk -v n="$N_OBS" -v r="$RES" 'BEGIN { f = n / (r * r); if (f > 1) f = 1; printf "%.6g", f }')

mkdir -p "$OUT" "$WORK" "$CACHE"
LOG="$OUT/run-$TAG.md"
elapsed() { echo $(( $(date +%s) - T0 )); }
fits() {   # fits STAGE SECONDS_NEEDED: is there time left for it?
    local left=$(( BUDGET_S - $(elapsed) ))
    if (( left < $2 )); then
        echo "- skipped **$1**: $(elapsed) s used of the $BUDGET_S s budget (needs about $2 s)" >>"$LOG"
        return 1
    fi
    return 0
}
stage() {  # stage NAME CMD...: run, time and log one stage
    local name=$1; shift
    local t=$(date +%s)
    echo "\$ $*" >>"$LOG.cmds"
    "$@"
    echo "- $name: $(( $(date +%s) - t )) s" >>"$LOG"
}

MACHINE=$($PY -c "from pdeinv.benchmark.runner import machine_info; m = machine_info('$DEVICE'); print(f\"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, device {m['device']}\")")
{
    echo "# GPU headline at ${RES}² on $DEVICE ($TAG)"
    echo
    echo "Machine: $MACHINE; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "Settings: ${RES}², $N_OBS points (obs fraction $OBS), $N_TRAIN training pairs, $EPOCHS epochs (batch $BATCH),"
    echo "UNO width $UNO_WIDTH, U-Net width $UNET_WIDTH, $STEPS sampler steps, $SAMPLES draws, $N_TEST test samples,"
    echo "tasks $TASKS, modes $MODES, budget $BUDGET_S s."
    echo
    echo "Stages:"
} >"$LOG"
: >"$LOG.cmds"

METHODS="bayes,map"
IFS=',' read -r -a TASK_LIST <<<"$TASKS"
for task in "${TASK_LIST[@]}"; do
    data="$WORK/$task-$RES.nc"
    uno="$WORK/diffusion-uno-$task-$RES.pt"
    unet="$WORK/diffusion-unet-$task-$RES.pt"
    if [[ ! -f "$data" ]] && fits "generate $task" 30; then
        stage "generate $task ($N_TRAIN pairs)" pdeinv generate "$task" --n "$N_TRAIN" --res "$RES" -o "$data" \
            --seed 12345 --device "$DEVICE" --quiet --overwrite
    fi
    if [[ -f "$data" && ! -f "$uno" ]] && fits "train uno $task" 60; then
        stage "train uno $task" pdeinv train diffusion --data "$data" --arch uno -o "$uno" --epochs "$EPOCHS" \
            --batch-size "$BATCH" -O hidden="$UNO_WIDTH" -O lifting=$(( 2 * UNO_WIDTH )) -O modes=12 \
            --device "$DEVICE" --quiet --overwrite
    fi
    if [[ -f "$data" && ! -f "$unet" ]] && fits "train unet $task" 60; then
        stage "train unet $task" pdeinv train diffusion --data "$data" --arch unet -o "$unet" --epochs "$EPOCHS" \
            --batch-size "$BATCH" -O base="$UNET_WIDTH" --device "$DEVICE" --quiet --overwrite
    fi
    methods="$METHODS"
    IFS=',' read -r -a DIFF <<<"$METHODS_DIFF"
    for m in "${DIFF[@]}"; do
        ckpt=$uno
        [[ "$m" == diffusionpde ]] && ckpt=$unet
        if [[ -f "$ckpt" ]]; then
            methods="$methods,$m[model=$ckpt]"
        else
            echo "- no $m row on $task: its prior ($ckpt) was not trained" >>"$LOG"
        fi
    done
    if ! fits "benchmark $task (diffusion rows)" 60; then
        methods="$METHODS"
    fi
    stage "benchmark $task ($methods)" pdeinv benchmark --suite published --task "$task" --mode "$MODES" \
        --res "$RES" --n-test "$N_TEST" --obs "$OBS" --steps "$STEPS" --samples "$SAMPLES" --methods "$methods" \
        --tag "$TAG" --out "$OUT" --cache-dir "$CACHE" --device "$DEVICE" --no-figures --quiet
done

{
    echo
    echo "Total: $(elapsed) s of the $BUDGET_S s budget."
    echo
    echo "Commands:"
    echo
    sed 's/^/    /' "$LOG.cmds"
    echo
    for f in "$OUT"/*-"$TAG".md; do
        if [[ -f "$f" && "$f" != "$LOG" ]]; then tail -n +2 "$f"; echo; fi
    done
} >>"$LOG"
rm -f "$LOG.cmds"
echo "gpu_headline: $(elapsed) s; results in $OUT ($LOG)"
