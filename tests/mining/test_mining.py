"""Mining on the generated world: strata chosen by real SigLIP-style similarity from the real
LanceDB index, split-clean, deterministic, logged to MLflow."""

from __future__ import annotations

from collections import Counter, defaultdict

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest

from mars_core.app.compose import load_config
from mars_core.catalogue.schema import CATALOGUE_FILE, GROUND_TRUTH_FILE, ROOMS_FILE, SPLITS_FILE
from mars_core.index.lance import VectorIndex, vector_matrix
from mars_core.index.store import IndexSnapshot
from mars_core.infra.errors import ConfigError
from mars_core.mining.mine import query_texts
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE, PAIRS_SCHEMA, STRATA
from mars_core.vision.embedder import Embedder

pytestmark = pytest.mark.slow  # every test here needs the indexed world and a flow run


def read(folder, name):
    return pq.read_table(folder / name).to_pylist()


@pytest.fixture(scope="module")
def exact(mined, cfg, model_cache):
    """(room_id, category) -> {key: similarity} over every same-split product, computed here
    from the index's vectors and the room photos, independently of the mining code."""
    splits = {(r["kind"], r["id"]): r["split"] for r in read(mined.folder, SPLITS_FILE)}
    snapshot = IndexSnapshot.current(cfg.index.dir)
    index = VectorIndex(
        snapshot.lance_uri, snapshot.manifest.table, snapshot.manifest.lance_version,
        nprobes=1, refine=1,
    )  # fmt: skip
    rows = index.rows(list(index.offsets))
    first_key = {}  # item_id -> its first key: an item on several marketplaces is one product
    keys, items = rows["key"].to_pylist(), rows["item_id"].to_pylist()
    for key, item in sorted(zip(keys, items, strict=True)):
        first_key.setdefault(item, key)
    vectors = {
        key: vector
        for key, vector in zip(rows["key"].to_pylist(), vector_matrix(rows), strict=True)
        if key in first_key.values()
    }
    categories = dict(zip(rows["key"].to_pylist(), rows["category"].to_pylist(), strict=True))
    rooms = read(mined.folder, ROOMS_FILE)
    room_vectors = Embedder.from_config(
        cfg.embedder, model_cache, max_image_pixels=cfg.data.max_image_pixels
    ).embed_images([room["path"] for room in rooms], progress=False)
    table: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for room, room_vector in zip(rooms, room_vectors, strict=True):
        split = splits[("room", room["room_id"])]
        for key, vector in vectors.items():
            if splits.get(("product", key)) == split:
                table[(room["room_id"], categories[key])][key] = float(vector @ room_vector)
    return table


def listing(key: str) -> str:
    """The item of a catalogue key (`item_id@domain`)."""
    return key.split("@")[0]


def by_request(pairs):
    groups = defaultdict(list)
    for row in pairs.to_pylist():
        groups[(row["room_id"], row["category"])].append(row)
    return groups


def test_pairs_have_the_schema_and_no_duplicates(mined):
    for table in (mined.pairs, mined.heldout):
        assert table.schema.equals(PAIRS_SCHEMA)
        assert len(set(table["pair_id"].to_pylist())) == table.num_rows
        assert set(table["stratum"].to_pylist()) <= set(STRATA)
    assert mined.report.pairs == mined.pairs.num_rows
    assert mined.report.heldout_pairs == mined.heldout.num_rows


def test_lookalikes_are_the_most_similar_and_beat_the_median(mined, exact):
    """Checked against scores computed here; near-ties (float rounding) may swap places."""
    cfg = load_config(mined.overrides).mining
    tol = 1e-5
    for (room_id, category), rows in by_request(mined.pairs).items():
        scores = exact[(room_id, category)]
        ranked = sorted(scores.values(), reverse=True)
        median = float(np.median(ranked))
        assert len(rows) == len({listing(row["key"]) for row in rows})  # one pair per item
        for row in rows:
            score = scores[row["key"]]
            assert row["similarity"] == pytest.approx(score, abs=tol)
            higher = sum(s > score + tol for s in ranked)
            assert higher < row["rank"] <= sum(s >= score - tol for s in ranked)
            if row["stratum"] == "lookalike":
                assert score >= ranked[cfg.lookalike - 1] - tol
                assert row["similarity"] > median, (room_id, category, row["key"])
            if row["stratum"] == "far":
                assert score <= ranked[-cfg.far] + tol


def test_strata_counts_match_the_config_for_every_category_of_every_room(mined, exact):
    cfg = load_config(mined.overrides)
    wanted = {"lookalike": cfg.mining.lookalike, "far": cfg.mining.far, "random": cfg.mining.random}
    requests = by_request(mined.pairs)
    train_rooms = {room for room, _ in requests}
    assert len(train_rooms) == mined.report.rooms["train"]
    stocked = {category for (_, category), scores in exact.items() if scores}
    queries = query_texts(cfg.index.vocabulary)
    for room in train_rooms:
        for category in stocked:
            rows = requests[(room, category)]  # misfit categories too (beds by the pool)
            assert Counter(r["stratum"] for r in rows) == wanted, (room, category)
            assert {r["query"] for r in rows} == {queries[category]}
    assert mined.report.strata == {s: n * len(requests) for s, n in wanted.items()}
    empty = {c for c, n in mined.report.categories.items() if n == 0}
    assert empty == set(queries) - stocked


def test_no_test_room_or_image_in_training_pairs_and_no_train_one_held_out(mined):
    splits = {(r["kind"], r["id"]): r["split"] for r in read(mined.folder, SPLITS_FILE)}
    images = {r["key"]: {r["image_id"], *(r["other_image_ids"] or [])}
              for r in read(mined.folder, CATALOGUE_FILE)}  # fmt: skip
    for table, split in ((mined.pairs, "train"), (mined.heldout, "test")):
        rows = table.to_pylist()
        assert rows and {r["split"] for r in rows} == {split}
        assert {splits[("room", r["room_id"])] for r in rows} == {split}
        assert {splits[("product", r["key"])] for r in rows} == {split}
        other = {
            image
            for (kind, key), s in splits.items()
            if kind == "product" and s != split
            for image in images.get(key, ())
        }
        assert not {image for r in rows for image in images[r["key"]]} & other


def test_same_seed_same_bytes(mined, mine_into):
    again = mine_into("again")
    for name in (PAIRS_FILE, HELDOUT_PAIRS_FILE):
        assert (again.folder / name).read_bytes() == (mined.folder / name).read_bytes()


def test_sharding_changes_no_pair_and_the_seed_only_the_random_ones(mined, mine_into):
    """Room photos embedded in other batches may differ in the last float bits, not more."""
    resharded = mine_into("resharded", "mining.rooms_per_shard=3")
    columns = ["pair_id", "stratum", "rank"]
    assert resharded.pairs.select(columns).equals(mined.pairs.select(columns))
    similarity = resharded.pairs["similarity"].to_numpy()
    assert np.allclose(similarity, mined.pairs["similarity"].to_numpy(), atol=1e-6)

    reseeded = mine_into("reseeded", "mining.seed=7", "mining.write_heldout=false")
    assert reseeded.report.heldout_file is None
    assert reseeded.pairs["pair_id"].to_pylist() != mined.pairs["pair_id"].to_pylist()
    for stratum in ("lookalike", "far"):

        def keys(table, stratum=stratum):
            return [r["pair_id"] for r in table.to_pylist() if r["stratum"] == stratum]

        assert keys(reseeded.pairs) == keys(mined.pairs)


def test_the_flow_logs_the_mix_the_categories_and_the_histogram(mined):
    runs = mlflow.search_runs(
        experiment_names=["mars"],
        filter_string="attributes.run_name = 'mining'",
        order_by=["attributes.start_time ASC"],
    )
    first = runs.iloc[0]
    assert first["metrics.pairs"] == mined.pairs.num_rows
    assert first["metrics.pairs_lookalike"] == mined.report.strata["lookalike"]
    assert first["metrics.pairs_category_BED"] == mined.report.categories["BED"]
    assert first["params.mining.name"] == "tiny"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first["run_id"], "mining")}
    assert artifacts == {"mining/pairs_similarity.png", "mining/heldout_pairs_similarity.png"}


def test_lookalikes_catch_more_traps_than_far_or_random_pairs(mined):
    """What mining is for: misfits that look right (ground truth's `trap`) crowd the
    lookalikes. Ground truth is read here, in a test, never by the mining code."""
    truth = {(r["room_id"], r["key"]): r for r in read(mined.folder, GROUND_TRUTH_FILE)}
    share = {}
    for stratum in STRATA:
        rows = [r for r in mined.pairs.to_pylist() if r["stratum"] == stratum]
        share[stratum] = sum(truth[(r["room_id"], r["key"])]["trap"] for r in rows) / len(rows)
    assert share["lookalike"] > share["random"] > share["far"]


def test_missing_inputs_are_one_line_naming_the_command(indexed, tmp_path, capsys):
    from flows.mining import main

    with pytest.raises(SystemExit) as exit_info:
        main([*indexed.overrides, f"index.dir={tmp_path / 'none'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: no index at")
    assert "python -m flows.index" in err

    with pytest.raises(SystemExit):
        main([*indexed.overrides, f"data.out_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert f"no {CATALOGUE_FILE}" in err and "python -m flows.ingest" in err


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("mining.search_depth=1", "mining.search_depth"),
        ("mining.far=-1", "mining.far"),
        ("pipeline.runner=spark", "pipeline.runner"),
        ("pipeline.dask_address=tcp://127.0.0.1:8786", "pipeline.dask_address"),
    ],
)
def test_contradicting_knobs_are_named(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config([override])


@pytest.mark.slow
def test_mining_shards_on_a_two_worker_dask_cluster_write_the_same_bytes(mined, mine_into):
    on_dask = mine_into("dask", "pipeline.runner=dask", "pipeline.dask_workers=2")
    for name in (PAIRS_FILE, HELDOUT_PAIRS_FILE):
        assert (on_dask.folder / name).read_bytes() == (mined.folder / name).read_bytes()
