"""Random crops with random perspective, resized for CLIP: CLIPstyler's patch augmentation, batched.

The reference draws each crop with torchvision's RandomCrop, RandomPerspective(distortion 0.5, p=1,
fill 0) and Resize(224), one crop at a time. Here the parameters of all crops are drawn at once
(same distributions, from a dedicated generator so runs repeat), and applied in three batched
operations: gather the crops, one grid_sample with per-crop perspective grids (torchvision's grid
and fill formula), one resize. ``apply_per_crop`` applies the same parameters the reference way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from spectralstyle.method.masks import window_shares


@dataclass
class CropParams:
    """Top/left offsets [n] and perspective end points [n, 4, 2] (x, y) of n crops."""

    top: torch.Tensor
    left: torch.Tensor
    endpoints: torch.Tensor
    size: int

    def __len__(self) -> int:
        return self.top.numel()


def sample_crop_params(
    n: int, height: int, width: int, size: int, distortion: float, generator: torch.Generator
) -> CropParams:
    """Draw n crop windows and perspective corners with torchvision's distributions."""
    if size > height or size > width:
        raise ValueError(f"crop size {size} is larger than the image ({width}x{height})")

    top = torch.randint(0, height - size + 1, (n,), generator=generator)
    left = torch.randint(0, width - size + 1, (n,), generator=generator)
    return CropParams(top, left, sample_endpoints(n, size, distortion, generator), size)


MIN_MASKED_SHARE = 0.5
"""With a mask, a crop window must be at least this much masked (mean mask value); when no window is,
the windows as masked as the best one are used."""


def sample_masked_crop_params(
    n: int, shares: torch.Tensor, size: int, distortion: float, generator: torch.Generator,
    min_share: float = MIN_MASKED_SHARE,
) -> CropParams:
    """Draw n crop windows uniformly among those whose mask share is at least ``min_share``, then their
    perspective corners as ``sample_crop_params`` does.

    ``shares`` [H - size + 1, W - size + 1] is each window's mean mask value (``masks.window_shares``).
    """
    shares = shares.detach().float().cpu()
    needed = min(min_share, float(shares.max()))
    if needed <= 0:
        raise ValueError("the mask selects no pixel")
    allowed = torch.nonzero(shares >= needed - 1e-6)  # [k, 2]: (top, left) of each allowed window
    picks = allowed[torch.randint(0, allowed.shape[0], (n,), generator=generator)]
    endpoints = sample_endpoints(n, size, distortion, generator)
    return CropParams(picks[:, 0].contiguous(), picks[:, 1].contiguous(), endpoints, size)


def sample_endpoints(n: int, size: int, distortion: float, generator: torch.Generator) -> torch.Tensor:
    """Perspective end points [n, 4, 2] (x, y) of n crops of side ``size``, torchvision's distribution."""

    def randint(lo: int, hi: int) -> torch.Tensor:
        return torch.randint(lo, hi, (n,), generator=generator)

    dx, dy = int(distortion * (size // 2)), int(distortion * (size // 2))
    near_x, far_x = (0, dx + 1), (size - dx - 1, size)
    near_y, far_y = (0, dy + 1), (size - dy - 1, size)
    corners = [(near_x, near_y), (far_x, near_y), (far_x, far_y), (near_x, far_y)]  # tl, tr, br, bl
    return torch.stack([torch.stack([randint(*xr), randint(*yr)], dim=1) for xr, yr in corners], dim=1)


def _startpoints(size: int) -> list[list[int]]:
    return [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]]


def perspective_coeffs(endpoints: torch.Tensor, size: int) -> torch.Tensor:
    """Batched torchvision ``_get_perspective_coeffs``: [n, 4, 2] end points -> [n, 8] (float64 solve)."""
    start = torch.tensor(_startpoints(size), dtype=torch.float64)
    end = endpoints.to(torch.float64)
    n = end.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    ex, ey = end[..., 0], end[..., 1]
    sx, sy = start[:, 0], start[:, 1]
    ones = torch.ones_like(ex)
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = ex, ey, ones
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = ex, ey, ones
    a[:, 0::2, 6], a[:, 0::2, 7] = -sx * ex, -sx * ey
    a[:, 1::2, 6], a[:, 1::2, 7] = -sy * ex, -sy * ey
    b = start.reshape(8).expand(n, 8)
    return torch.linalg.solve(a, b).to(torch.float32)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor onto ``device``; on CUDA from pinned memory without blocking the host, so the
    per-step crop parameters do not wait for the GPU to finish the StyleNet forward."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def perspective_grids(
    coeffs: torch.Tensor, size: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Sampling grids [n, size, size, 2] for grid_sample, as torchvision's ``_perspective_grid``.

    Never in bf16/fp16: there pixel positions above 256 are not even representable, and grids off by
    several pixels would change the crops, not just round them.
    """
    c = to_device(coeffs, device).to(dtype)
    pix = torch.arange(size, device=device, dtype=dtype) + 0.5
    y, x = torch.meshgrid(pix, pix, indexing="ij")
    x, y = x.reshape(1, -1), y.reshape(1, -1)
    denom = c[:, 6:7] * x + c[:, 7:8] * y + 1.0
    gx = (c[:, 0:1] * x + c[:, 1:2] * y + c[:, 2:3]) / (0.5 * size) / denom - 1.0
    gy = (c[:, 3:4] * x + c[:, 4:5] * y + c[:, 5:6]) / (0.5 * size) / denom - 1.0
    return torch.stack([gx, gy], dim=-1).view(-1, size, size, 2)


def gather_crops(image: torch.Tensor, params: CropParams) -> torch.Tensor:
    """[1, C, H, W] -> [n, C, s, s] in one indexing operation (differentiable)."""
    ar = torch.arange(params.size, device=image.device)
    offsets = to_device(torch.stack([params.top, params.left]), image.device)  # one copy for both
    rows = (offsets[0][:, None] + ar)[:, :, None]
    cols = (offsets[1][:, None] + ar)[:, None, :]
    return image[0][:, rows, cols].permute(1, 0, 2, 3)


def apply_batched(image: torch.Tensor, params: CropParams, out_size: int = 224) -> torch.Tensor:
    """Crops, perspective (fill 0) and resize of all crops at once: [1, C, H, W] -> [n, C, out, out].

    The warp runs in float32 even under autocast (grids and samples): its cost is small next to CLIP.
    """
    crops = gather_crops(image, params)
    crops = crops.to(torch.promote_types(crops.dtype, torch.float32))
    grids = perspective_grids(perspective_coeffs(params.endpoints, params.size), params.size, image.device, crops.dtype)
    with_mask = torch.cat([crops, torch.ones_like(crops[:, :1])], dim=1)
    warped = F.grid_sample(with_mask, grids, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = warped[:, :-1] * warped[:, -1:]  # torchvision's fill blend with fill = 0
    return F.interpolate(warped, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=True)


def apply_per_crop(image: torch.Tensor, params: CropParams, out_size: int = 224) -> torch.Tensor:
    """The reference pattern: one torchvision crop, perspective and resize call per crop."""
    start = _startpoints(params.size)
    out = []
    for k in range(len(params)):
        crop = TF.crop(image, int(params.top[k]), int(params.left[k]), params.size, params.size)
        crop = TF.perspective(crop, start, params.endpoints[k].tolist(), fill=[0.0] * image.shape[1])
        out.append(TF.resize(crop, [out_size, out_size], antialias=True))
    return torch.cat(out, dim=0)


class PatchAugmenter:
    """Draws n random perspective crops of an image per call, repeatably from its own generator; with a
    ``mask`` [1, 1, H, W] the windows are drawn where it is set (``sample_masked_crop_params``)."""

    def __init__(self, num_crops: int, crop_size: int, distortion: float = 0.5, out_size: int = 224, seed: int = 0,
                 mask: torch.Tensor | None = None):
        self.num_crops, self.crop_size, self.distortion, self.out_size = num_crops, crop_size, distortion, out_size
        self.generator = torch.Generator().manual_seed(seed)
        self.shares = None if mask is None else window_shares(mask.detach().cpu(), crop_size)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator's state, for checkpoints: a resumed run draws the same crops as an uninterrupted one."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])

    def sample(self, height: int, width: int) -> CropParams:
        if self.shares is not None:
            if tuple(self.shares.shape) != (height - self.crop_size + 1, width - self.crop_size + 1):
                raise ValueError(f"the mask does not have the image's size {width}x{height}")
            return sample_masked_crop_params(self.num_crops, self.shares, self.crop_size, self.distortion,
                                             self.generator)
        return sample_crop_params(self.num_crops, height, width, self.crop_size, self.distortion, self.generator)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return apply_batched(image, self.sample(*image.shape[-2:]), self.out_size)
