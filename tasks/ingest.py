"""Ingest tasks: get the raw data (generate or acquire), build the tables, split them."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from mars_core.catalogue.acquire import acquire_abo
from mars_core.catalogue.ingest import IngestReport, ingest
from mars_core.catalogue.splits import SplitsReport, write_splits
from mars_core.config import DataConfig
from mars_core.world.generate import WorldSummary, generate_world


@task(name="generate-world")
def generate_world_task(data: DataConfig) -> WorldSummary:
    """Write the generated world in ABO + House Rooms format (skipped if already there)."""
    return generate_world(data)


@task(name="acquire-abo", retries=3, retry_delay_seconds=[2, 5, 15])
def acquire_abo_task(data: DataConfig) -> str:
    """The ABO folder, downloaded and extracted first if asked; retries resume downloads."""
    return str(acquire_abo(data))


@task(name="build-catalogue")
def build_catalogue_task(data: DataConfig) -> IngestReport:
    """Catalogue, rooms, ground truth and quarantine tables in data.out_dir."""
    report = ingest(data)
    logger = get_run_logger()
    logger.info("%d products, %d rooms; changes %s", report.products, report.rooms, report.changes)
    logger.info("quarantined per reason: %s", report.quarantined or "none")
    return report


@task(name="make-splits")
def make_splits_task(data: DataConfig) -> SplitsReport:
    """Grouped train/test splits of the ingested products and rooms."""
    return write_splits(Path(data.out_dir), data.test_fraction, data.seed)
