#!/usr/bin/env bash
# Everything that proves the CUDA path, in one call (docs/gpu.md): versions, the CUDA tests, a CUDA smoke of
# every command, bench fp32 and bf16+compile, one timed full default run and a profile of steady steps.
#
#   bash scripts/gpu_check.sh                     # on a CUDA machine, from the source tree (PYTHONPATH=src)
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TIMEOUT_SCALE=10 GPU_CHECK_BUDGET_S=9999 bash scripts/gpu_check.sh
#                                                 # dry run of every part at tiny sizes (no CUDA needed)
#
# Results go to $OUT when set, else ./gpu-check/ (at most 8 files: summary.txt env.txt profile.txt shares.json
# full-run.json bench-fp32.json bench-bf16-compile.json logs.tar.gz); the summary is printed at the end.
# Wheels of packages the machine lacks (scripts/gpu_wheels.sh) are installed from $GPU_CHECK_WHEELS (default
# ./wheels) into a temporary folder first. Without CUDA it stops at once with one line and exit code 3.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
PY="${PYTHON:-python3}"
OUTDIR="${OUT:-$ROOT/gpu-check}"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/wheels}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-420}"  # later parts are skipped (and say so) once this much time has passed
ONLY="${GPU_CHECK_ONLY:-}"  # comma-separated part names to run (default: all), e.g. for a partial dry run
SCALE="${GPU_CHECK_TIMEOUT_SCALE:-1}"  # multiplies every part's timeout (a slow, shared CPU for the dry run)

no_cuda() {
    echo "error: CUDA is missing here ($1); run scripts/gpu_check.sh on a CUDA machine, or GPU_CHECK_DEVICE=cpu for a dry run" >&2
    exit 3
}
if [ "$DEVICE" = cuda ]; then
    command -v nvidia-smi >/dev/null 2>&1 || no_cuda "no nvidia-smi"
    nvidia-smi -L >/dev/null 2>&1 || no_cuda "nvidia-smi finds no GPU"
elif [ "$DEVICE" != cpu ]; then
    echo "error: GPU_CHECK_DEVICE must be cuda or cpu, got '$DEVICE'" >&2
    exit 2
fi

START=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")" || exit 2
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUTDIR" "$WORK/logs" "$WORK/in" "$WORK/o" || exit 2
SUMMARY="$OUTDIR/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

SITE=""
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    SITE="$WORK/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
        >"$WORK/logs/wheels.log" 2>&1 || { echo "error: installing the wheels of $WHEELS failed (see below)" >&2;
                                            tail -5 "$WORK/logs/wheels.log" >&2; exit 2; }
fi
export PYTHONPATH="$ROOT/src${SITE:+:$SITE}" PYTHONUNBUFFERED=1 SPECTRALSTYLE_OFFLINE=1
if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1 \
        || no_cuda "torch sees no CUDA device"
fi
CLI=("$PY" -m spectralstyle)

if [ "$DEVICE" = cuda ]; then  # the issue's sizes
    SIZE=128x128; CROPS=8; CROP=64; STEPS=3; BIG=1600x1200; TILE=512
    BENCH=(--size 512x512 --crops 64 --steps 5); COMPILE=(--compile)
    FULL=(--size 512x512 --crops 64 --steps 200 --precision bf16 --compile --profile-steps 5 --warmup 3)
else  # dry run: the same commands at tiny sizes (no compile: on CPU it needs minutes and a C++ compiler)
    SIZE=64x64; CROPS=2; CROP=32; STEPS=1; BIG=320x240; TILE=128
    BENCH=(--size 64x64 --crops 2 --crop-size 32 --steps 1); COMPILE=()
    FULL=(--size 64x64 --crops 2 --crop-size 32 --steps 3 --precision bf16 --profile-steps 2 --warmup 1)
fi
TINY=(--weights random --steps "$STEPS" --size "$SIZE" --crops "$CROPS" --crop-size "$CROP" --device "$DEVICE")

# --- versions -------------------------------------------------------------------------------------------
{
    [ "$DEVICE" = cuda ] && nvidia-smi
    "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}, "
          f"bf16 {torch.cuda.is_bf16_supported()}, {torch.cuda.device_count()} device(s)")
for name in ("clip", "ftfy", "av", "torch_dct", "rapidocr", "onnxruntime", "huggingface_hub", "safetensors",
             "filelock", "matplotlib", "regex", "tqdm"):
    try:
        module = __import__(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name} MISSING ({type(exc).__name__})")
EOF
} >"$OUTDIR/env.txt" 2>&1
note "gpu_check on $DEVICE, $(date -u +%FT%TZ), $(grep -m1 '^python' "$OUTDIR/env.txt")"

# --- each part: its command, exit status and seconds -----------------------------------------------------
FAILED=0
part() {  # part NAME TIMEOUT_S COMMAND...
    local name="$1" limit="$2"; shift 2
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        return
    fi
    local elapsed=$(( $(date +%s) - START ))
    if [ "$elapsed" -ge "$BUDGET_S" ]; then
        note "$(printf '%-22s SKIPPED (%ss used of the %ss budget)' "$name" "$elapsed" "$BUDGET_S")"
        return
    fi
    local t0=$(date +%s)
    timeout -k 10 "$(( limit * SCALE ))" "$@" >"$WORK/logs/$name.log" 2>&1
    local rc=$?
    [ "$rc" -ne 0 ] && FAILED=$((FAILED + 1))
    note "$(printf '%-22s exit %-3s %4ss  %s' "$name" "$rc" "$(( $(date +%s) - t0 ))" \
        "$( [ "$rc" -ne 0 ] && tail -1 "$WORK/logs/$name.log" | cut -c1-150)")"
}

"$PY" - "$WORK/in" "$BIG" <<'EOF' >"$WORK/logs/inputs.log" 2>&1 || { echo "error: making the inputs failed" >&2; exit 2; }
import sys
from fractions import Fraction
from pathlib import Path
import numpy as np
from PIL import Image
folder, (w, h) = Path(sys.argv[1]), (int(v) for v in sys.argv[2].split("x"))
rng = np.random.default_rng(0)
for i, (pw, ph) in enumerate([(160, 120), (120, 160)]):
    Image.fromarray((rng.random((ph, pw, 3)) * 255).astype(np.uint8)).resize((pw, ph)).save(folder / f"photo{i}.png")
coarse = Image.fromarray((rng.random((h // 24, w // 24, 3)) * 255).astype(np.uint8))
coarse.resize((w, h), Image.BICUBIC).save(folder.parent / "big.png")
import av
with av.open(str(folder.parent / "clip.mp4"), mode="w") as out:
    stream = out.add_stream("libx264", rate=12)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
    for i in range(12):
        img = np.full((64, 96, 3), 128, np.uint8)
        img[:, (i * 6) % 80:(i * 6) % 80 + 16] = 250
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
EOF

part cuda-tests 240 "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda \
    tests/test_bench.py tests/test_clip_model.py tests/test_device.py tests/test_resume.py
part smoke-transfer 120 "${CLI[@]}" transfer "$WORK/in/photo0.png" "pop art" "${TINY[@]}" --save-model --out "$WORK/o/transfer"
part smoke-batch 150 "${CLI[@]}" batch "$WORK/in" --text "pop art" "${TINY[@]}" --out "$WORK/o/batch"
part smoke-generate 120 "${CLI[@]}" generate "pop art" --weights random --steps "$STEPS" --size "$SIZE" --cutouts 2 \
    --device "$DEVICE" --out "$WORK/o/generate"
part smoke-train 120 "${CLI[@]}" train "pop art" --images "$WORK/in" "${TINY[@]}" --batch 2 --out "$WORK/o/train"
MODEL="$(find "$WORK/o/transfer" -name '*.stylenet.pt' 2>/dev/null | head -1)"
part smoke-apply-tiled 120 "${CLI[@]}" apply "${MODEL:-no-model-from-transfer.stylenet.pt}" "$WORK/big.png" \
    --tile "$TILE" --device "$DEVICE" --out "$WORK/o/apply"
part smoke-video 150 "${CLI[@]}" video "$WORK/clip.mp4" "pop art" "${TINY[@]}" --out "$WORK/o/video"
part bench-fp32 180 "${CLI[@]}" bench --device "$DEVICE" "${BENCH[@]}" --json "$OUTDIR/bench-fp32.json"
part bench-bf16-compile 240 "${CLI[@]}" bench --device "$DEVICE" "${BENCH[@]}" --precision bf16 "${COMPILE[@]}" \
    --json "$OUTDIR/bench-bf16-compile.json"
part full-run-and-profile 300 "$PY" scripts/gpu_profile.py --device "$DEVICE" "${FULL[@]}" --out "$OUTDIR"

# --- summary ---------------------------------------------------------------------------------------------
"$PY" - "$OUTDIR" <<'EOF' | tee -a "$SUMMARY"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("bench-fp32", "bench-bf16-compile"):
    path = out / f"{name}.json"
    if path.is_file():
        d = json.loads(path.read_text())
        ref, ours = d["patterns"]["reference"], d["patterns"]["optimized"]
        print(f"{name}: reference ({ref['precision']}) {ref['median_step_s'] * 1000:.1f} ms/step, ours "
              f"({ours['precision']}{' +compile' if ours['compile'] else ''}) {ours['median_step_s'] * 1000:.1f} ms/step,"
              f" speedup {d['speedup']:.2f}x, memory ratio {d['memory_ratio']:.2f}")
path = out / "full-run.json"
if path.is_file():
    r = json.loads(path.read_text())
    print(f"full run: {r['steps']} steps in {r['run_s']:.1f} s ({r['run_without_compile_s']:.1f} s without compile and "
          f"warm-up {r['compile_and_warmup_s']:.1f} s), {r['median_step_s'] * 1000:.1f} ms/step steady")
path = out / "shares.json"
if path.is_file():
    print("shares of a step: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in json.loads(path.read_text()).items()))
EOF
tar -czf "$OUTDIR/logs.tar.gz" -C "$WORK" logs o 2>/dev/null
note "$FAILED part(s) failed; $(( $(date +%s) - START )) s in all; results in $OUTDIR"
[ "$FAILED" -eq 0 ]
