"""Views of a room photo: seeded, the same size, view 0 the photo itself."""

from __future__ import annotations

import pytest
from PIL import Image

from mars_core.config import TrainConfig
from mars_core.training.augment import RoomViews


@pytest.fixture
def photo() -> Image.Image:
    """A photo whose left and right halves differ, so a mirror image shows."""
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 32, 48))
    return image


def test_view_zero_is_the_photo_and_the_others_are_seeded_crops(photo):
    views = RoomViews(views=8, min_crop=0.75, flip=True, seed=3)
    assert views.draw(photo, "a.png", 0) is photo
    drawn = [views.draw(photo, "a.png", v) for v in range(1, 8)]
    assert all(d.size == photo.size for d in drawn)
    assert [d.tobytes() for d in drawn] == [
        views.draw(photo, "a.png", v).tobytes() for v in range(1, 8)
    ]
    assert len({d.tobytes() for d in drawn}) > 1
    mirrored = [d for d in drawn if d.getpixel((2, 24))[0] > d.getpixel((2, 24))[2]]
    assert 0 < len(mirrored) < len(drawn)


def test_the_colours_stay_those_of_the_photo(photo):
    views = RoomViews(views=8, min_crop=0.75, flip=False, seed=0)
    for view in range(1, 8):
        colours = {c for _, c in views.draw(photo, "a.png", view).getcolors(64 * 48)}
        assert (30, 30, 200) in colours and (200, 30, 30) in colours


def test_each_example_gets_a_seeded_view_and_one_view_means_none():
    assert RoomViews(1, 0.75, True, 0).pick(5) == [0] * 5
    picks = RoomViews(4, 0.75, True, 0).pick(400)
    assert picks == RoomViews(4, 0.75, True, 0).pick(400)
    assert set(picks) == {0, 1, 2, 3} and picks != RoomViews(4, 0.75, True, 1).pick(400)


def test_views_need_the_collated_path():
    with pytest.raises(ValueError, match=r"room_views=4 needs train\.collate_once=true"):
        TrainConfig(room_views=4, collate_once=False)
