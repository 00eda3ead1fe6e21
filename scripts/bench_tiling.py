"""Tiled apply versus untiled, side by side in one run: seconds, their ratio and the 8-bit difference.

    python scripts/bench_tiling.py                      # 1024x768, 512-px tiles, exact statistics (make bench-tiling)
    python scripts/bench_tiling.py --tile 256 --modes exact,sampled,downscaled --rounds 3 --json tiling.json

The reference StyleNet (ngf=16, seed 0, random weights: the cost does not depend on the weights) on a
synthetic photo (smooth colours with a bright block, as in tests/test_tiling.py). Untiled is
``net.stylize`` on the whole image; tiled is ``stylize_large`` with the given tile and statistics mode.
With several rounds the runs alternate (untiled, tiled, untiled, ...) and the medians are compared, so a
shared machine's slow spells hit both; the load average at the start and end is printed with the result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spectralstyle.apply.tiling import STATS_MODES, stylize_large
from spectralstyle.media.images import finish_image, to_pil
from spectralstyle.method.stylenet import StyleNet

TARGET_RATIO = 3.0  # issue 19: exact tiling at most 3x untiled at 1024x768


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((max(2, height // 24), max(2, width // 24), 3)) * 255).astype(np.uint8))
    img = np.array(coarse.resize((width, height), Image.BICUBIC))
    img[height // 3: height // 2, width // 5: width // 2] = (240, 230, 40)
    return Image.fromarray(img)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x768", help="WxH of the image")
    parser.add_argument("--tile", type=int, default=512, help="tile interior side (multiple of 8)")
    parser.add_argument("--modes", default="exact", help=f"comma-separated modes of {', '.join(STATS_MODES)}")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--contrast", type=float, default=1.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in STATS_MODES for m in modes):
        parser.error(f"--modes must be among {', '.join(STATS_MODES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = StyleNet(ngf=16).eval().to(device)
    img = synthetic_photo(width, height)
    tensor = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div(255).to(device)

    def untiled() -> np.ndarray:
        with torch.no_grad():
            return np.asarray(to_pil(finish_image(net.stylize(tensor), args.contrast)))

    def tiled(mode: str) -> np.ndarray:
        result = stylize_large(net, img, args.contrast, device, tile=args.tile, stats=mode)
        assert result.stats == mode, f"the image fits in one tile of {args.tile} px; give a smaller --tile"
        return np.asarray(result.image)

    def timed(fn, *a) -> tuple[float, np.ndarray]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn(*a)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, out

    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {"untiled": [], **{m: [] for m in modes}}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        seconds, outputs["untiled"] = timed(untiled)
        times["untiled"].append(seconds)
        for mode in modes:
            seconds, outputs[mode] = timed(tiled, mode)
            times[mode].append(seconds)
    load_end = os.getloadavg()[0]
    base = statistics.median(times["untiled"])
    rows = []
    print(f"tiling bench: {width}x{height}, tile {args.tile}, {device}, {torch.get_num_threads()} threads, "
          f"{args.rounds} round(s), load average {load_start:.1f} -> {load_end:.1f} on {os.cpu_count()} cores")
    print(f"{'mode':<12}{'seconds':>10}{'ratio':>8}{'max diff':>10}{'mean diff':>11}  (8-bit levels vs untiled)")
    for name, values in times.items():
        seconds = statistics.median(values)
        diff = np.abs(outputs[name].astype(int) - outputs["untiled"].astype(int))
        rows.append({"mode": name, "seconds": seconds, "all_seconds": values, "ratio": seconds / base,
                     "max_diff": int(diff.max()), "mean_diff": float(diff.mean())})
        print(f"{name:<12}{seconds:>10.2f}{seconds / base:>8.2f}{int(diff.max()):>10}{diff.mean():>11.4f}")
    if "exact" in times:
        exact = next(r for r in rows if r["mode"] == "exact")
        verdict = "met" if exact["ratio"] <= TARGET_RATIO else "MISSED"
        print(f"exact/untiled ratio {exact['ratio']:.2f} (target at most {TARGET_RATIO:.0f}x at 1024x768: {verdict})")
    if args.json:
        args.json.write_text(json.dumps({"size": [width, height], "tile": args.tile, "device": str(device),
                                         "threads": torch.get_num_threads(), "load_average": [load_start, load_end],
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
