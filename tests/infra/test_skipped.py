"""`Skipped`: one shape for what a step left out, with its reason and the particulars."""

from mars_core.infra.errors import BadImageError
from mars_core.infra.skipped import Skipped


def test_an_error_gives_its_type_as_reason_and_its_message_as_detail():
    skipped = Skipped.because("B0X@amazon.com", BadImageError("no file at gone.jpg"))
    assert skipped == Skipped("B0X@amazon.com", "BadImageError", "no file at gone.jpg")


def test_one_line_names_the_item_the_reason_and_the_detail_when_there_is_one():
    assert str(Skipped("B0X@amazon.com", "BadImageError", "no file")) == (
        "B0X@amazon.com: BadImageError: no file"
    )
    assert str(Skipped("room-7", "not in splits.parquet")) == "room-7: not in splits.parquet"
