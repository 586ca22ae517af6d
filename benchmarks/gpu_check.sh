#!/usr/bin/env bash
# Every GPU benchmark and every CUDA test in one call (about 8 minutes on one GPU), into one results file:
# stacked vs solo vs parallel processes (bench_stack), --runs-per-gpu (bench_runs_per_gpu), training
# throughput in fp32 and bf16 with channels_last (bench_train), DDP when there is more than one GPU
# (bench_ddp), WebVision decoding (bench_decode), and `pytest -m cuda`.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [RESULTS_FILE]     (default gpu_check_results.txt)
#
# --dry-run runs every step at its smallest on the CPU: the script works on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi
out=${1:-gpu_check_results.txt}
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=${PYTHONPATH:-platform}

step() {  # step SECONDS NAME COMMAND...: run with a time limit, output and exit status into the results
    local limit=$1 name=$2; shift 2
    echo "## $name: $*" >>"$out"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$out" 2>&1
    local status=$?
    echo "-- $name: exit $status after $((SECONDS - start)) s" >>"$out"
    echo "$name: exit $status ($((SECONDS - start)) s)"
}

: >"$out"
{ date -u; uname -a; nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count())"
} >>"$out" 2>&1
gpus=$("$py" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)

if (( dry )); then
    step 300 stack "$py" benchmarks/bench_stack.py --dry-run --cases cnn4-8px
    step 300 runs-per-gpu "$py" benchmarks/bench_runs_per_gpu.py --seeds 1 --epochs 1 --settings 1
    step 300 train "$py" benchmarks/bench_train.py --model cnn4 --images 256 --epochs 1 --precision fp32 --device cpu
    step 300 decode "$py" benchmarks/bench_decode.py --images 16 --batch-size 8 --workers 1
    step 300 cuda-tests "$py" -m pytest -q -m cuda tests
else
    step 200 stack "$py" benchmarks/bench_stack.py --device cuda --ks 1 2 4 8 16 32 --batches 20 --max-seconds 30 \
        --json gpu_check_stack.json
    step 90 runs-per-gpu "$py" benchmarks/bench_runs_per_gpu.py --seeds 2 --epochs 3 --settings 1,2,4
    step 60 train "$py" benchmarks/bench_train.py --model cnn8 --images 10000 --epochs 2 --precision fp32 bf16
    if (( gpus > 1 )); then
        step 60 ddp "$py" benchmarks/bench_ddp.py --models resnet34:32 --steps 10
    fi
    step 40 decode "$py" benchmarks/bench_decode.py --images 256
    step 60 cuda-tests "$py" -m pytest -q -m cuda tests
fi
echo "results: $out"
