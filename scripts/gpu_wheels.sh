#!/usr/bin/env bash
# Download here (with network) the wheels that the GPU machine's image lacks, for scripts/gpu_check.sh.
#
#   bash scripts/gpu_wheels.sh [FOLDER]     # default ./wheels (ignored by git); carry it to the device run
#
# The device image (Python 3.12, x86-64) has torch, torchvision, typer, rich, pyyaml, pillow, numpy, pytest,
# onnxruntime, huggingface_hub, safetensors, filelock, matplotlib, regex, tqdm and opencv (see docs/gpu.md),
# but not clip-anytorch (and its ftfy, wcwidth), av (PyAV, video), torch-dct (the bench tests' independent
# DCT), and setuptools<81 (clip imports pkg_resources, which setuptools 81 removed) in case its own is newer.
# rapidocr (the OCR metric of `evaluate`) is not needed by the check and is left out: its omegaconf
# needs antlr4-python3-runtime, which has no wheel.
set -euo pipefail
DEST="${1:-wheels}"
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in clip-anytorch==2.6.0 setuptools==80.10.2 ftfy==6.3.1 wcwidth==0.9.4 av==18.1.0 torch-dct==0.1.6; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d "$DEST" "$spec"
done
ls -l "$DEST"
du -sh "$DEST"
