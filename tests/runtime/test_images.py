import numpy as np
import pytest
from PIL import Image

from undense.errors import UndenseError
from undense.runtime.images import Layout, ValueRange, grid, grid_columns, layout, save_grid


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


@pytest.mark.parametrize("shape,expected", [
    ((64,), Layout(8, 8, 1)), ((1, 8, 8), Layout(8, 8, 1)), ((1, 64), Layout(8, 8, 1)), ((7, 5), Layout(7, 5, 1)),
    ((48,), Layout(1, 48, 1)), ((1, 1, 48), Layout(1, 48, 1)), ((3, 4, 6), Layout(4, 6, 3))])
def test_layout_follows_the_output_shape(shape, expected):
    assert layout(shape) == expected


@pytest.mark.parametrize("shape", [(2, 4, 4), (3, 4, 4, 2), ()])
def test_a_shape_that_is_not_a_picture_is_refused(shape):
    with pytest.raises(UndenseError, match=r"not a picture.*undense run"):
        layout(shape)


def test_values_become_pixels_by_the_outputs_range_not_a_clip():
    tanh = ValueRange(-1.0, 1.0, "tanh")
    np.testing.assert_allclose(tanh.levels(np.array([-1.0, -0.5, 0.0, 1.0])), [0.0, 0.25, 0.5, 1.0])
    picture = np.asarray(grid(np.array([[-1.0, -0.5, 0.0, 1.0]]), Layout(1, 4, 1), tanh, columns=1, scale=1))
    assert picture[1, 1:5].tolist() == [255, 191, 128, 0]  # ink dark: -1 white, 1 black, -0.5 not clipped to white


def test_rgb_tiles_keep_their_colours():
    red = np.zeros((1, 3, 2, 2))
    red[0, 0] = 1.0
    picture = grid(red, Layout(2, 2, 3), ValueRange(0.0, 1.0, "sigmoid"), columns=1, scale=1)
    assert picture.mode == "RGB" and picture.getpixel((1, 1)) == (255, 0, 0) and picture.getpixel((0, 0)) == (
        255, 255, 255)


def test_grid_columns_make_a_canvas_about_square():
    assert grid_columns(16, Layout(8, 8, 1)) == 8 and grid_columns(400, Layout(8, 8, 1)) == 20
    assert grid_columns(64, Layout(1, 48, 1)) == 2


def test_save_grid_makes_the_folder_and_refuses_a_suffix_it_cannot_write(tmp_path):
    path = save_grid(np.zeros((2, 64)), tmp_path / "new" / "grid.png")
    assert Image.open(path).size == (8 * (8 * 9 + 1), 8 * (9 + 1))
    with pytest.raises(UndenseError, match=r"grid.txt: name an image file ending in \.png"):
        save_grid(np.zeros((2, 64)), tmp_path / "grid.txt")
    assert not (tmp_path / "grid.txt").exists()
