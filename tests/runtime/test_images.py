import numpy as np

from undense.runtime.images import grid


def test_grid_tiles_images_with_ink_dark():
    images = np.zeros((3, 64))
    images[1] = 1.0
    picture = np.asarray(grid(images, columns=2, scale=1, gap=1))
    assert picture.shape == (2 * 9 + 1, 2 * 9 + 1)
    assert (picture[1:9, 1:9] == 255).all()       # blank image: white
    assert (picture[1:9, 10:18] == 0).all()       # full ink: black
    assert (picture[0, :] == 255).all()           # the gaps stay white
    assert (picture[10:18, 10:18] == 255).all()   # the unused fourth tile stays white


def test_grid_scales_every_pixel():
    picture = grid(np.random.default_rng(0).random((8, 64)), columns=8, scale=4)
    assert picture.size == (4 * (8 * 9 + 1), 4 * (9 + 1))
