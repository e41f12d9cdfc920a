"""The ingest flow runs for real (Prefect, MLflow store) on the generated world and on ABO
archives downloaded from a local server."""

from __future__ import annotations

import mlflow
import pytest
from support.abo_tree import REAL_LISTING, AboTree
from support.archive_server import ArchiveServer, tar_folder

from mars_core.catalogue.quarantine import Reason
from mars_core.catalogue.schema import CATALOGUE_FILE, SPLITS_FILE


def latest_ingest_run():
    runs = mlflow.search_runs(
        experiment_names=["mars"],
        filter_string="attributes.run_name = 'ingest'",
        order_by=["attributes.start_time DESC"],
    )
    return runs.iloc[0]


@pytest.mark.slow
def test_synthetic_ingest_flow_logs_counts_and_reruns_as_a_no_op(
    session_overrides, prefect_harness, tmp_path, capsys
):
    from flows.ingest import ingest, main

    overrides = [
        *session_overrides,
        "data=synthetic",
        f"data.raw_dir={tmp_path}/raw",
        f"data.out_dir={tmp_path}/catalogue",
        "data.world.products=40",
        "data.world.rooms_per_type=2",
    ]
    report = ingest(overrides)
    assert (report.products, report.rooms) == (40, 14)
    assert (tmp_path / "catalogue" / CATALOGUE_FILE).is_file()
    assert (tmp_path / "catalogue" / SPLITS_FILE).is_file()
    run = latest_ingest_run()
    assert run["metrics.products"] == 40 and run["metrics.rooms"] == 14
    assert run["metrics.world.generated"] == 1
    for reason in Reason:
        assert run[f"metrics.quarantine.{reason}"] >= 1, reason
    assert run["metrics.split.room.test"] == 7  # one of the two rooms of each type
    assert run["params.data.world.products"] == "40"

    main(overrides)
    printed = capsys.readouterr().out
    assert "40 products, 14 rooms" in printed and "malformed_json 1" in printed
    run = latest_ingest_run()
    assert run["metrics.world.generated"] == 0
    assert run["metrics.catalogue.unchanged"] == 40 and run["metrics.catalogue.added"] == 0


@pytest.mark.slow
def test_abo_ingest_flow_downloads_extracts_and_ingests(
    session_overrides, prefect_harness, tmp_path
):
    from flows.ingest import ingest

    tree = AboTree(tmp_path / "source")
    tree.add(REAL_LISTING | {"other_image_id": []})
    tree.image("81iZlv3bjpL")
    tree.write()
    with ArchiveServer() as server:
        server.files["abo-listings.tar"] = tar_folder(tree.root, "listings", tmp_path / "l.tar")
        server.files["abo-images-small.tar"] = tar_folder(tree.root, "images", tmp_path / "i.tar")
        report = ingest(
            [
                *session_overrides,
                "data=abo",
                "data.acquire=download",
                f"data.base_url={server.url}",
                f"data.raw_dir={tmp_path}/abo",
                f"data.download_dir={tmp_path}/downloads",
                "data.rooms_dir=",
                f"data.out_dir={tmp_path}/out",
            ]
        )
    assert report.products == 1 and report.ground_truth == 0
    assert latest_ingest_run()["metrics.products"] == 1
