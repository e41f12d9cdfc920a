"""The runtime set-up: offline by default, stores in the project, pyserini on Java 21."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mars_core.infra.runtime import OFFLINE_ENV, bar_disable, setup_runtime


def test_setup_runtime_is_offline_and_keeps_stores_in_the_project(tmp_path, monkeypatch):
    for key in [*OFFLINE_ENV, "MLFLOW_TRACKING_URI", "PREFECT_HOME"]:
        monkeypatch.delenv(key, raising=False)
    runtime = setup_runtime(tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert runtime.mlflow_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert runtime.prefect_home == tmp_path / ".prefect"
    assert (runtime.java_home / "bin" / "java").is_file()


def test_user_settings_win(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    runtime = setup_runtime(tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert runtime.mlflow_uri == "sqlite:///elsewhere.db"


def test_java_is_21(tmp_path):
    runtime = setup_runtime(tmp_path)
    out = subprocess.run(
        [str(runtime.java_home / "bin" / "java"), "-version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert 'version "21' in out.stderr


def test_pyserini_imports_and_searches_in_a_fresh_process(tmp_path):
    """A fresh interpreter (no JVM yet): set-up, import pyserini, index and search a doc."""
    script = f"""
import json, pathlib, subprocess, sys
from mars_core.infra.runtime import ensure_jvm
ensure_jvm()
from pyserini.search.lucene import LuceneSearcher
docs = pathlib.Path({str(tmp_path)!r}) / "docs"
docs.mkdir()
(docs / "d.jsonl").write_text(json.dumps({{"id": "p1", "contents": "a blue velvet sofa"}}))
from pyserini.index.lucene import LuceneIndexer
indexer = LuceneIndexer({str(tmp_path / "idx")!r})
indexer.add_doc_dict({{"id": "p1", "contents": "a blue velvet sofa"}})
indexer.close()
hits = LuceneSearcher({str(tmp_path / "idx")!r}).search("sofa", k=1)
print(hits[0].docid)
"""
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("p1")


def test_a_flow_module_loaded_as_a_deployment_loads_it_keeps_the_hub_offline():
    """A deployment's worker imports the flow module and calls its flow (no `main`, no
    `run_app`): the module's first statement sets the process up before its imports load the
    hub, which reads the variable once, when it is first imported."""
    script = (
        "import flows.index\n"
        "from huggingface_hub import constants\n"
        "print(constants.HF_HUB_OFFLINE)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_progress_bars_are_off_when_stderr_is_not_a_terminal():
    """A log file gets no carriage-return frames: every bar is off, verbose or not (tqdm reads
    TQDM_DISABLE when it is imported, which every command does after `configure_logging`)."""
    script = (
        "from mars_core.infra.runtime import bar_disable, configure_logging\n"
        "configure_logging(verbose=True)\n"
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(3)): pass\n"
        "for _ in tqdm(range(3), disable=bar_disable(False)): pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert bar_disable(True) is True


def test_the_test_session_keeps_its_stores_in_its_own_home():
    """Each pytest worker's MLflow store and Prefect home are under its own `MARS_HOME`, not
    inherited from the process that started it (tests/conftest.py)."""
    home = Path(os.environ["MARS_HOME"]).resolve()
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert Path(os.environ["PREFECT_HOME"]) == home / ".prefect"


def test_importing_the_library_changes_no_environment_variable():
    """`import mars_core` (and the light modules every command loads) sets nothing: the entry
    points set the process up explicitly. Run in a fresh process whose environment lacks every
    value `setup_runtime` would set, so a default set on import would show."""
    script = """
import json, os
before = dict(os.environ)
import mars_core, mars_core.app.cli, mars_core.funnel.stages
print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))
print(json.dumps(sorted(set(before) - set(os.environ))))
"""
    set_up = {*OFFLINE_ENV, "MLFLOW_TRACKING_URI", "PREFECT_HOME", "JAVA_HOME", "MARS_VERBOSE"}
    env = {k: v for k, v in os.environ.items() if k not in set_up}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["{}", "[]"]
