"""Every command's command line, in one place: flags, `--help`, `--cfg job`, one way to fail.

A command is an `App` (its name, summary, extra arguments and an example; the table is
`mars_core.app.apps`) plus a function of the parsed `Invocation`. `run_app` sets the process up
(`setup_runtime`: offline, stores in the project, Java), parses, answers `--help` and `--cfg
job|all`, sets how loud the libraries are (`-v`), validates the composed config, then runs the
command; a mistake a user can fix (`UserInputError`) ends in one `error:` line and exit status
2, and `--debug` keeps its traceback. Nothing heavy is imported here (no Prefect, torch or
LanceDB): `--help` answers before any of them could load.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

from omegaconf import OmegaConf

from mars_core.app.compose import CONFIG_NAME, compose_to_yaml, conf_dir, load_config
from mars_core.app.sweep import MULTIRUN_FLAGS, check_sweep, split_overrides
from mars_core.config import GROUPS, MarsConfig
from mars_core.infra.errors import ConfigError, UserInputError, printable
from mars_core.infra.runtime import configure_logging, exit_on_sigterm, setup_runtime

USAGE_ERROR = 2
HELP_FLAGS = ("-h", "--help")
CFG_PARTS = ("job", "all")
COMMON_USAGE = "[-h] [--cfg job|all] [--debug] [-v]"
SWEEP_FLAG = (
    "-m, --multirun",
    "sweep: one job per combination of swept values (a=1,2 b=choice(x,y) c=range(1,4)), or "
    "hydra/sweeper=optuna for sampled trials; the best on validation becomes @candidate",
)
COMMON_FLAGS = (
    ("-h, --help", "show this help and exit"),
    ("--cfg job", "print the composed, resolved config (YAML) and exit; needs no other argument"),
    ("--cfg all", "the same, with Hydra's own settings first"),
    ("--debug", "keep the traceback of an error (for a bug report)"),
    ("-v, --verbose", "show library logs (Prefect, Lucene, warnings) and short progress bars"),
)


@dataclass(frozen=True)
class Argument:
    """An argument besides the overrides: `--room PATH` (an option), `--verify` (a flag, with
    `flag=True`) or `requests` (positional)."""

    name: str
    help: str
    metavar: str = ""
    required: bool = False
    flag: bool = False


@dataclass(frozen=True)
class App:
    """What `--help` says about a command and which extra arguments it takes."""

    prog: str
    summary: str
    example: str
    arguments: tuple[Argument, ...] = ()
    sweeps: bool = False  # takes -m/--multirun: one job per combination of swept values


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the Hydra overrides and the command's own arguments."""

    overrides: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    debug: bool = False
    verbose: bool = False
    multirun: bool = False
    # The config the overrides compose (with -m, the part every job shares), validated.
    config: MarsConfig | None = None

    @property
    def cfg(self) -> MarsConfig:
        if self.config is None:
            raise RuntimeError("the invocation was not parsed by `parse`")
        return self.config


class UsageError(UserInputError):
    """A command line argparse cannot parse (unknown flag, missing required argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting (so errors stay one line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see `{self.prog} --help`")


def _parser(app: App, *, config_only: bool) -> _Parser:
    """The command's parser; with `config_only` (`--cfg`) its own arguments are optional and its
    positional ones are left out (the tokens that are not overrides are dropped, see `parse`)."""
    parser = _Parser(prog=app.prog, add_help=False, allow_abbrev=False)
    parser.add_argument("--cfg", choices=CFG_PARTS)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    if app.sweeps:
        parser.add_argument(*MULTIRUN_FLAGS, dest="multirun", action="store_true")
    for argument in app.arguments:
        if argument.flag:
            parser.add_argument(argument.name, action="store_true")
        elif argument.name.startswith("-"):
            required = argument.required and not config_only
            parser.add_argument(argument.name, required=required, metavar=argument.metavar)
        elif not config_only:
            parser.add_argument(argument.name, metavar=argument.metavar or argument.name.upper())
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser


def is_override(token: str) -> bool:
    """Whether a command-line token is a Hydra override (`key=value`, `+key=value`, `~key`)."""
    return "=" in token or token.startswith("~")


def group_options() -> dict[str, tuple[list[str], str]]:
    """Each config group's options (files in conf/<group>/) and its default, read from conf/."""
    root = conf_dir()
    defaults: dict[str, str] = {}
    for entry in OmegaConf.load(root / f"{CONFIG_NAME}.yaml").get("defaults", []):
        if isinstance(entry, Mapping):
            defaults |= {str(k): str(v) for k, v in entry.items()}
    groups = [*GROUPS, "experiment", "hparams_search"]
    return {
        group: (sorted(p.stem for p in (root / group).glob("*.yaml")), defaults.get(group, ""))
        for group in groups
        if (root / group).is_dir()
    }


def help_text(app: App) -> str:
    """Hydra-style help: usage, flags, config groups with their options, an example."""
    own = " ".join(
        (a.name if a.required or not a.name.startswith("-") else f"[{a.name}]")
        + (f" {a.metavar}" if a.metavar and a.name.startswith("-") else "")
        for a in app.arguments
    )
    flags = "[-h] [-m] [--cfg job|all] [--debug] [-v]" if app.sweeps else COMMON_USAGE
    usage = " ".join(filter(None, [app.prog, flags, own]))
    lines = [f"usage: {usage} [KEY=VALUE ...]"]
    lines += ["", app.summary, "", "flags:"]
    rows = [(f"{a.name} {a.metavar}".strip(), a.help) for a in app.arguments]
    rows += [SWEEP_FLAG] if app.sweeps else []
    rows += list(COMMON_FLAGS)
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name.ljust(width)}  {text}" for name, text in rows]
    lines += ["", "config groups (pick one option with GROUP=OPTION, e.g. data=abo):"]
    for group, (options, default) in group_options().items():
        shown = ", ".join(f"{o} (default)" if o == default else o for o in options)
        lines.append(f"  {group.ljust(11)} {shown}")
    lines += [
        "",
        "overrides: KEY=VALUE for any key (`--cfg job` shows them all), e.g. funnel.k2=30,",
        "  'funnel.stages=[bm25,siglip]'; a misspelt key or option is named with the valid ones.",
        "",
        "example:",
        f"  {app.example}",
    ]
    return "\n".join(lines)


def parse(app: App, argv: Sequence[str]) -> Invocation | None:
    """Parse; answer `--help` and `--cfg job|all` (None: answered, nothing more to run).

    Both answer without the command's other arguments, as every Hydra app does: `--help`
    before anything is checked, `--cfg` with the command's own arguments optional.
    """
    if any(flag in argv for flag in HELP_FLAGS):
        print(help_text(app))
        return None
    config_only = any(token == "--cfg" or token.startswith("--cfg=") for token in argv)
    args = _parser(app, config_only=config_only).parse_intermixed_args(list(argv))
    configure_logging(verbose=args.verbose)
    multirun = bool(getattr(args, "multirun", False))
    # `--cfg` leaves the command's positional arguments among the overrides: drop them.
    overrides = [t for t in args.overrides if is_override(t)] if args.cfg else args.overrides
    if multirun and not args.cfg:
        check_sweep(overrides)
    shared = split_overrides(overrides)[0] if multirun else list(overrides)
    if args.cfg:
        print(compose_to_yaml(shared, args.cfg), end="")
        return None
    own = {a.name.lstrip("-").replace("-", "_") for a in app.arguments}
    return Invocation(
        overrides=list(overrides),
        options={name: getattr(args, name) for name in own},
        debug=args.debug,
        verbose=args.verbose,
        multirun=multirun,
        config=load_config(shared),
    )


def run_app(app: App, argv: Sequence[str] | None, command: Callable[[Invocation], object]) -> None:
    """Parse `argv` (default: sys.argv), then run `command`; a user's mistake is one line.
    A SIGTERM ends the command as an exception would, so its runs are closed as failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    setup_runtime()
    exit_on_sigterm()
    with user_errors_in_one_line(args):
        invocation = parse(app, args)
        if invocation is not None:
            with printable_stdout():
                command(invocation)


@contextmanager
def user_errors_in_one_line(args: Sequence[str]) -> Iterator[None]:
    """A `UserInputError` raised inside ends the process in one `error:` line (`fail`),
    unless the command line asks for `--debug`."""
    try:
        yield
    except UserInputError as e:
        if "--debug" in args:
            raise
        fail(e)
    except BrokenPipeError:
        reader_went_away()


def reader_went_away() -> NoReturn:
    """The reader of stdout closed it (`mars-search --help | head`): stop quietly, as a Unix
    tool does, instead of a traceback about a pipe nobody reads any more."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


class _PrintableWriter:
    """A text stream that drops control characters on their way to the real one."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextmanager
def printable_stdout() -> Iterator[None]:
    """Whatever a command prints (catalogue names, reasons quoting them, paths) reaches the
    terminal without control characters: text from a catalogue must never steer it."""
    real = sys.stdout
    sys.stdout = _PrintableWriter(real)
    try:
        yield
    finally:
        sys.stdout = real


def answer_early(module: str, app: App) -> None:
    """The first statement of a flow module, an entry point whether it is the program or is
    loaded by a deployment's worker: set the process up (`setup_runtime`, before the module's
    own imports load Prefect, MLflow and the models); when it is the program (`python -m
    flows.<name>`, so `module` is "__main__"), answer `--help`, `--cfg` and config mistakes
    now, before those imports (seconds)."""
    setup_runtime()
    if module != "__main__":
        return
    args = sys.argv[1:]
    with user_errors_in_one_line(args):
        if parse(app, args) is None:
            sys.exit(0)


def fail(error: UserInputError) -> NoReturn:
    """The one line a user reads for a mistake they can fix, then exit status 2."""
    message = f"bad configuration: {error}" if isinstance(error, ConfigError) else str(error)
    print(f"error: {printable(' '.join(message.splitlines()))}", file=sys.stderr)
    sys.exit(USAGE_ERROR)
