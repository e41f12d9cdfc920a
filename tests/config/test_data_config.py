"""The data group's knobs reject contradictions by name."""

from __future__ import annotations

import dataclasses

import pytest

from mars_core.app.compose import load_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.acquire=ftp", "data.acquire"),
        ("data.acquire=download data.base_url=", "base_url"),
        ("data.test_fraction=1.0", "test_fraction"),
        ("data.max_keywords=0", "max_keywords"),
        ("+data.category_map.SOFA_BED=sofa_bed", "upper-case"),
        ("data.world.products=5", "data.world.products 5 must be >= 13"),
        ("data.world.twin_share=0.9", "twin_share"),
    ],
)
def test_contradictions_name_the_knob(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(["data=abo", *override.split()])


def test_generator_refuses_to_replace_a_folder_it_did_not_write(cfg, tmp_path):
    from mars_core.world.generate import generate_world

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "precious.json").write_text("{}")
    data = dataclasses.replace(
        cfg.data,
        raw_dir=str(tmp_path / "raw"),
        rooms_dir=str(tmp_path / "raw/rooms"),
        truth_file=str(tmp_path / "raw/truth.parquet"),
    )
    with pytest.raises(ValueError, match="did not write"):
        generate_world(data)
    assert (tmp_path / "raw" / "precious.json").is_file()
