"""The offline teacher's colour harmony: named colours read from listings and pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from mars_core.app.compose import load_config
from mars_core.teacher.colour import ColourJudge
from mars_core.teacher.metadata import MetadataTeacher

BLUE, RED, BEIGE = (40, 90, 205), (200, 45, 45), (214, 192, 152)


@pytest.fixture(scope="module")
def cfg():
    return load_config()


@pytest.fixture(scope="module")
def judge(cfg) -> ColourJudge:
    return ColourJudge(cfg.teacher, cfg.data.max_image_pixels)


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> str:
    """Blue walls over most of the photo, a red sofa, a sliver of yellow under the bar."""
    photo = Image.new("RGB", (128, 128), BLUE)
    photo.paste(RED, (10, 70, 90, 110))
    photo.paste((235, 200, 50), (120, 0, 124, 128))
    path = tmp_path_factory.mktemp("rooms") / "living.png"
    photo.save(path)
    return str(path)


def shot(tmp_path, rgb) -> str:
    """A product shot: a shape in `rgb` on a white backdrop."""
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste(rgb, (30, 20, 66, 80))
    path = tmp_path / f"product-{rgb[0]}.png"
    image.save(path)
    return str(path)


def test_a_room_photo_s_colours_are_those_covering_enough_of_it(judge, room):
    assert judge.room_colours(room) == ("blue", "red")


@pytest.mark.parametrize(
    ("listed", "colour"),
    [
        ("Navy Blue", "blue"),
        ("Cream Beige", "beige"),
        ("Light Gray", "grey"),
        ("Espresso", "brown"),
        ("Off-White", "white"),
    ],
)
def test_a_listing_s_colour_name_says_the_product_s_colour(judge, listed, colour):
    assert judge.product_colour({"color": listed}) == colour


def test_without_a_named_colour_the_product_image_says_it(judge, tmp_path):
    assert judge.product_colour({"color": "Multi", "image_path": shot(tmp_path, BEIGE)}) == "beige"
    assert judge.product_colour({"color": None, "image_path": shot(tmp_path, RED)}) == "red"


def test_an_unreadable_image_leaves_colour_unjudged(judge, tmp_path, room):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert judge.product_colour({"image_path": str(broken)}) is None
    assert judge.judge(str(broken), {"color": "Blue"}) is None
    assert judge.judge(room, {"color": "Multi"}) is None


def test_among_fits_a_matching_colour_scores_higher_and_says_so(room):
    cfg = load_config(["teacher.colour_harmony=true"])
    teacher = MetadataTeacher(cfg.teacher, cfg.data.max_image_pixels)
    sofa = {"category": "SOFA", "name": "Velvet Sofa", "color": "Ocean Blue"}
    assert teacher.judge("living_room", sofa, room) == (
        1.0,
        "a blue sofa belongs in a living room and matches its blue tones",
    )
    sofa["color"] = "Sage Green"
    assert teacher.judge("living_room", sofa, room) == (
        0.8,
        "a green sofa belongs in a living room but clashes with its blue and red tones",
    )
    sofa["color"] = "Navy"
    score, why = teacher.judge("pool", sofa, room)
    assert score == 0.1 and "blue" not in why, "a misfit keeps its low score whatever its colour"


def test_colour_harmony_is_off_by_default(cfg, room):
    teacher = MetadataTeacher(cfg.teacher, cfg.data.max_image_pixels)
    sofa = {"category": "SOFA", "name": "Velvet Sofa", "color": "Blue"}
    assert teacher.judge("living_room", sofa, room) == (0.9, "a sofa belongs in a living room")


@pytest.mark.parametrize(
    "override", ["teacher.score_colour_match=0.7", "teacher.score_colour_clash=0.4"]
)
def test_a_clash_score_over_the_match_or_under_the_fit_bar_is_refused(override):
    with pytest.raises(Exception, match="score_colour_clash"):
        load_config([override])
