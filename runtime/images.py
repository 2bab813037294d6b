"""Pictures of a generator's outputs: how an output shape is laid out as tiles, and how values become pixels.

Layout, from the shape of one output (leading dimensions of 1 dropped first):

    [H, W]                     one greyscale tile of H x W
    [3, H, W]                  one RGB tile of H x W
    [N] with N a square        one greyscale tile of sqrt(N) x sqrt(N)
    [N] otherwise              one greyscale strip of 1 x N

Any other shape (another number of channels, more dimensions) is refused before any work. Values become pixels
by the output's known range (a `ValueRange`): its low end is level 0, its high end level 1, so a Tanh output's
-1 and 1 and a Sigmoid output's 0 and 1 are the two ends alike. Greyscale tiles draw level 1 as ink (black on
white, as digits are written); RGB tiles draw the colours as they are.
"""
from dataclasses import dataclass
from math import ceil, isqrt, sqrt
from pathlib import Path

import numpy as np
from PIL import Image

from undense.errors import UndenseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# The range of a bounded activation's output, by the compiler's name of the function (compiler/functions.py)
ACTIVATION_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
MIN_CANVAS_TILES = 8  # a grid of square tiles is at least this many tiles wide
SCALE = 8  # each value drawn as SCALE x SCALE pixels ...
MAX_SIDE = 4096  # ... fewer where the picture would be wider or taller than this


@dataclass(frozen=True)
class Layout:
    height: int
    width: int
    channels: int  # 1: greyscale, 3: RGB

    def __str__(self) -> str:
        kind = "RGB" if self.channels == 3 else "greyscale"
        return f"{self.height}x{self.width} {kind} {'strips' if self.height == 1 else 'tiles'}"


@dataclass(frozen=True)
class ValueRange:
    """The real values drawn as the two ends of the pixel scale, and where that range comes from."""

    low: float
    high: float
    source: str  # e.g. "tanh", "the output's quantization", "the batch's own values"
    known: bool = True  # False: the model does not bound its output, so the range is the batch's own

    @classmethod
    def of_batch(cls, values: np.ndarray) -> "ValueRange":
        return cls(float(np.min(values)), float(np.max(values)), "the batch's own values", known=False)

    def levels(self, values: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        return np.clip((np.asarray(values, dtype=np.float64) - self.low) / (span if span > 0 else 1.0), 0.0, 1.0)

    def __str__(self) -> str:
        return f"[{self.low:.3g}, {self.high:.3g}] ({self.source})"


@dataclass(frozen=True)
class Picture:
    """How a model's outputs are drawn: the tiles, and the values at the two ends of the pixel scale."""

    shape: Layout
    values: ValueRange

    def for_batch(self, images: np.ndarray) -> "Picture":
        """With the batch's own range where the model's is not known."""
        return self if self.values.known else Picture(self.shape, ValueRange.of_batch(images))


def layout(shape: tuple[int, ...]) -> Layout:
    """How one output of this shape (without the batch dimension) is drawn; UndenseError for a shape that is not
    a picture."""
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    if len(dims) == 1:
        side = isqrt(dims[0])
        return Layout(side, side, 1) if side * side == dims[0] else Layout(1, dims[0], 1)
    if len(dims) == 2:
        return Layout(dims[0], dims[1], 1)
    if len(dims) == 3 and dims[0] == 3:
        return Layout(dims[1], dims[2], 3)
    raise UndenseError(f"the model's output is shaped [{', '.join(map(str, shape))}] per image, which is not a "
                       "picture undense can draw (it draws [H, W], [3, H, W] or a vector of values); "
                       "`undense run` gives the values as .npy")


def grid_columns(count: int, shape: Layout, gap: int = 1) -> int:
    """Tiles a row: a canvas about as wide as tall, and for square tiles at least MIN_CANVAS_TILES wide."""
    aspect = (shape.height + gap) / (shape.width + gap)
    return max(1, round(MIN_CANVAS_TILES * aspect), ceil(sqrt(count * aspect)))


def grid(images: np.ndarray, shape: Layout | None = None, values: ValueRange | None = None, columns: int = 8,
         scale: int | None = None, gap: int = 1) -> Image.Image:
    """Tile images (one row of values each, or shaped) into one picture, `columns` tiles a row.

    By default the tiles are square greyscale images with values in [0, 1]. Each pixel is blown up `scale` times
    (nearest neighbour, so the real pixels stay visible; by default SCALE, less for a picture beyond MAX_SIDE)
    and the tiles are separated by `gap` source pixels of white.
    """
    images = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if shape is None:
        shape = layout((images.shape[1],))
    levels = (values or ValueRange(0.0, 1.0, "pixels")).levels(images)
    if shape.channels == 1:  # ink dark
        tiles = (1.0 - levels).reshape(len(images), shape.height, shape.width, 1)
    else:
        tiles = levels.reshape(len(images), 3, shape.height, shape.width).transpose(0, 2, 3, 1)
    rows = -(-len(tiles) // columns)
    step_y, step_x = shape.height + gap, shape.width + gap
    canvas = np.ones((rows * step_y + gap, columns * step_x + gap, shape.channels))
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        canvas[gap + r * step_y: gap + r * step_y + shape.height, gap + c * step_x: gap + c * step_x + shape.width] \
            = tile
    pixels = np.round(canvas * 255).astype(np.uint8)
    scale = scale or max(1, min(SCALE, MAX_SIDE // max(canvas.shape[:2])))
    picture = Image.fromarray(pixels[:, :, 0] if shape.channels == 1 else pixels)  # L or RGB
    return picture.resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)


def check_image_path(path: str | Path, option: str = "-o") -> Path:
    """A path the grid can be saved to: an image suffix PIL writes; UndenseError otherwise."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UndenseError(f"{option} {path}: name an image file ending in {', '.join(IMAGE_SUFFIXES)}, "
                           f"e.g. {path.with_suffix('.png').name}")
    return path


def save_grid(images: np.ndarray, path: str | Path, drawn: Picture | None = None) -> Path:
    """The grid as an image file, its folder made if missing; by default square greyscale tiles of values in
    [0, 1]."""
    path = check_image_path(path)
    images = np.asarray(images).reshape(len(images), -1)
    drawn = (drawn or Picture(layout(images.shape[1:]), ValueRange(0.0, 1.0, "pixels"))).for_batch(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid(images, drawn.shape, drawn.values, columns=grid_columns(len(images), drawn.shape)).save(path)
    return path
