"""Nothing reaches the network: a search and an inference flow run under a guard.

Two guards, each over the whole process tree (the flow, the temporary Prefect server it
starts, the JVM that pyserini starts): a `sitecustomize` that refuses and records every
Python DNS lookup or connection that is not loopback, and `strace -f -e trace=connect`,
which also sees native code (the JVM, onnxruntime's telemetry) and DNS over port 53.
Where strace is missing only the Python guard runs; CI's `unshare -n` covers the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

GUARD = """
import ipaddress, os, socket

_LOG = os.environ["MARS_NET_GUARD_LOG"]
_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost"}


def _record(line):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {line}\\n")


def _local(host):
    host = host.decode() if isinstance(host, bytes) else host
    if host is None or host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(name, real, host_of):
    def guarded(*args, **kwargs):
        host = host_of(*args)
        if not _local(host):
            _record(f"refused {name} {host!r}")
            raise OSError(f"network guard: {name} {host!r} refused")
        return real(*args, **kwargs)
    return guarded


for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, _name, _guard(_name, getattr(socket, _name), lambda host, *rest: host))

_INET = (socket.AF_INET, socket.AF_INET6)
for _name in ("connect", "connect_ex"):
    _real = getattr(socket.socket, _name)
    setattr(socket.socket, _name, _guard(
        _name, _real, lambda sock, address: address[0] if sock.family in _INET else None
    ))
_record("armed")
"""

# connect() calls strace shows that leave the machine: an inet address other than
# loopback, or anything on port 53 (a DNS query, even to a local resolver).
INET = re.compile(r'sin6?_addr=inet_(?:addr|pton)\((?:AF_INET6, )?"(?P<addr>[^"]+)"\)')
PORT = re.compile(r"sin6?_port=htons\((?P<port>\d+)\)")


def off_machine(strace_log: str) -> list[str]:
    """The connect() lines of an `strace -f -e trace=connect` log that leave the machine."""
    import ipaddress

    bad = []
    for line in strace_log.splitlines():
        address, port = INET.search(line), PORT.search(line)
        if not address or "connect(" not in line:
            continue
        loopback = ipaddress.ip_address(address["addr"]).is_loopback
        mapped = ipaddress.ip_address(address["addr"])
        mapped = getattr(mapped, "ipv4_mapped", None)
        if (port and port["port"] == "53") or not (loopback or (mapped and mapped.is_loopback)):
            bad.append(line)
    return bad


def run_guarded(args: list[str], tmp_path: Path, name: str) -> tuple[str, list[str], str]:
    """Run `python args...` under both guards; (output, Python guard's log lines, strace's
    off-machine lines)."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir(exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(textwrap.dedent(GUARD))
    log = tmp_path / f"{name}.guard.log"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    checkout = Path(__file__).resolve().parents[2]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(guard_dir), str(checkout)]),
        "MARS_NET_GUARD_LOG": str(log),
        "HOME": str(home),  # where onnxruntime would write its telemetry database
        # the traced, shared machine can take longer than Prefect's default to start its server
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    env.pop("XDG_CACHE_HOME", None)
    command = [sys.executable, *args]
    trace = tmp_path / f"{name}.strace"
    if shutil.which("strace"):
        command = [
            "strace",
            "-f",
            "--seccomp-bpf",
            "-qq",
            "-e",
            "trace=connect",
            "-o",
            str(trace),
            *command,
        ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    traced = off_machine(trace.read_text()) if trace.exists() else []
    return output, log.read_text().splitlines(), traced


def test_the_guard_catches_what_it_should(tmp_path):
    script = (
        "import socket\n"
        "for call in (lambda: socket.create_connection(('10.1.2.3', 80), timeout=0.1),\n"
        "             lambda: socket.getaddrinfo('telemetry.example.com', 443)):\n"
        "    try: call()\n"
        "    except OSError: pass\n"
        "socket.socket().connect_ex(('127.0.0.1', 9))\n"
    )
    _, guard, _ = run_guarded(["-c", script], tmp_path, "self-check")
    refused = [line.split(" ", 1)[1] for line in guard if "refused" in line]
    assert refused == [
        "refused getaddrinfo '10.1.2.3'",
        "refused getaddrinfo 'telemetry.example.com'",
    ]


@pytest.mark.slow
def test_a_search_and_an_inference_flow_stay_on_this_machine(indexed, tmp_path):
    rooms = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    room = next(r["path"] for r in rooms if r["room_type"] == "bedroom")
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"room": room, "query": "bed"}) + "\n")
    runs = {
        "search": [
            "-m",
            "mars_core.app.commands.search",
            "--room",
            room,
            "--query",
            "bed",
            *indexed.overrides,
        ],
        "inference": ["-m", "flows.inference", str(requests), *indexed.overrides],
    }
    for name, args in runs.items():
        output, guard, traced = run_guarded(args, tmp_path, name)
        assert any(line.endswith(" armed") for line in guard), output
        assert [line for line in guard if "refused" in line] == [], output
        assert traced == [], traced
    assert (tmp_path / "requests.parquet").is_file() or "results:" in output
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()
