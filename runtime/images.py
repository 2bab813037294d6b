"""Image grids of generated digits as PNG."""
from pathlib import Path

import numpy as np
from PIL import Image


def grid(images: np.ndarray, columns: int = 8, scale: int = 8, gap: int = 1) -> Image.Image:
    """Tile square greyscale images in [0, 1] (N, side*side or N, side, side) into one picture.

    Each pixel is blown up `scale` times (nearest neighbour, so the real pixels stay
    visible) and the tiles are separated by `gap` source pixels of white.
    """
    images = np.asarray(images, dtype=np.float64)
    side = int(round(np.sqrt(images[0].size)))
    tiles = np.clip(images.reshape(len(images), side, side), 0.0, 1.0)
    rows = -(-len(tiles) // columns)
    step = side + gap
    canvas = np.ones((rows * step + gap, columns * step + gap))
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        canvas[gap + r * step: gap + r * step + side, gap + c * step: gap + c * step + side] = 1.0 - tile
    pixels = np.round(canvas * 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L").resize(
        (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)


def save_grid(images: np.ndarray, path: str | Path, columns: int = 8) -> Path:
    path = Path(path)
    grid(images, columns=columns).save(path)
    return path
