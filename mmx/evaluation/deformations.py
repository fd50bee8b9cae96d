"""The paper's novel deformations (Table 4 and its appendix table), drawn per image and applied in batch.

Each image gets its own random rotation or shear, U(-d, d) degrees, or a fixed zoom. The affine
maps follow torchvision's ``transforms.functional.affine`` exactly (same matrix, same sampling
grid, bilinear, black fill; a test compares them image by image), but all images are warped in
one ``grid_sample`` call on the device instead of one call per image.

Zoom is mmx's reading of the paper's "zoom-in / zoom-out p%": the image is rescaled by 100/p
about its centre, so zoom-in 60% shows the central 60% of the image at full size and zoom-out
140% shows the whole image at 1/1.4 of its size on a black border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# name -> (kind, parameter): degrees for rotation and shear, percent for zooms.
DEFORMATIONS = {
    **{f"rotation{d}": ("rotation", float(d)) for d in (20, 40, 60, 80)},
    **{f"shear{d}": ("shear", d) for d in (28.6, 57.3, 114.6, 143.2, 171.9)},
    **{f"zoomin{p}": ("zoom", float(p)) for p in (20, 40, 60, 80)},
    **{f"zoomout{p}": ("zoom", float(p)) for p in (120, 140, 160, 180)},
}


def inverse_affine(angle: torch.Tensor, shear: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) inverse maps about the image centre, torchvision's formula with batched parameters (degrees)."""
    rot, sx = torch.deg2rad(angle), torch.deg2rad(shear)
    sy = torch.zeros_like(rot)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    zero = torch.zeros_like(rot)
    matrix = torch.stack([d, -b, zero, -c, a, zero], dim=1) / scale[:, None]
    return matrix.view(-1, 2, 3)


def warp(pixels: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one inverse affine map per image (torchvision's grid: pixel centres, then normalised by half the size)."""
    n, _, h, w = pixels.shape
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, device=pixels.device)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, device=pixels.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=pixels.device)], dim=-1)
    scale = torch.tensor([0.5 * w, 0.5 * h], device=pixels.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(matrices.transpose(1, 2).to(pixels.dtype) / scale)
    return F.grid_sample(pixels, grid.view(n, h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False)


def deform(pixels: torch.Tensor, name: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The named deformation (or ``identity``) of a batch of images in [0, 1]; rotation and shear drawn per image."""
    if name == "identity":
        kind, value = "zoom", 100.0
    elif name in DEFORMATIONS:
        kind, value = DEFORMATIONS[name]
    else:
        raise ValueError(f"unknown deformation {name!r}; choose from {', '.join(DEFORMATIONS)} or identity")
    zero = torch.zeros(len(pixels), device=pixels.device)
    angle, shear, scale = zero, zero, torch.full_like(zero, 100.0 / value if kind == "zoom" else 1.0)
    if kind in ("rotation", "shear"):
        drawn = (torch.rand(len(pixels), device=pixels.device, generator=generator) * 2 - 1) * value
        angle, shear = (drawn, zero) if kind == "rotation" else (zero, drawn)
    return warp(pixels, inverse_affine(angle, shear, scale))
