"""The benchmark's subprocesses: the OpenAI stub, the Streamwise server, and py-spy.

Every process started here is stopped here, by its own pid: terminate, then kill after a deadline.
Everything listens on 127.0.0.1. Every wait has a timeout.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PROFILE_RATE = 200  # py-spy samples per second


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def wait_until_up(proc: Proc, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.process.returncode}:\n{proc.log_tail()}")
        try:
            if httpx.get(proc.url + path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not answer {path} within {timeout} s:\n{proc.log_tail()}")
        time.sleep(0.05)


def start_stub(tokens: int, workdir: Path, timeout: float = 20.0) -> Proc:
    """`python -m tests.support.openai_stub` (uvloop + httptools) on an inherited listening socket."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tests.support.openai_stub", "--fd", str(sock.fileno())]
    command += ["--tokens", str(tokens)]
    log = workdir / "stub.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, pass_fds=[sock.fileno()], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    sock.close()  # the child holds it now
    proc = Proc("the OpenAI stub", process, f"http://{HOST}:{port}", log)
    try:
        wait_until_up(proc, "/_stub/health", timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def streamwise_command() -> list[str]:
    script = Path(sys.executable).with_name("streamwise")
    return [str(script)] if script.exists() else [sys.executable, "-m", "streamwise"]


def streamwise_env(data_dir: Path, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `streamwise` process: no STREAMWISE_ setting but these (and `env_extra`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWISE_")}
    env.update(
        STREAMWISE_DATA_DIR=str(data_dir),
        STREAMWISE_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'streamwise.db'}",
        STREAMWISE_SEED="false",
        STREAMWISE_PRELOAD_LOCAL_MODEL="false",
        STREAMWISE_LOG_LEVEL="warning",
        # The scripted fake model lives in the tests, never in the package.
        STREAMWISE_NODE_MODULES="tests.support.fake_model,tests.support.fake_retrieval",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
        ),
    )
    env.update(env_extra or {})
    return env


def start_server(
    data_dir: Path,
    workdir: Path,
    *,
    timeout: float = 30.0,
    env_extra: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Proc:
    """`streamwise start` on a free port, with a fresh data dir and the embedded model not preloaded;
    `args` are added to the command line (`--role api`)."""
    port = free_port()
    env = streamwise_env(data_dir, env_extra)
    log = workdir / "server.log"
    command = [*streamwise_command(), "start", "--host", HOST, "--port", str(port), *args]
    with log.open("wb") as out:
        # cwd: a directory without a .env file, so only the settings above apply.
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    proc = Proc("the Streamwise server", process, f"http://{HOST}:{port}", log)
    try:
        wait_until_up(proc, "/api/v1/ping", timeout)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: Proc, grace: float = 15.0) -> int | None:
    if proc.process.poll() is None:
        proc.process.terminate()
        try:
            proc.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            proc.process.wait(timeout=10)
    return proc.process.returncode


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set) from /proc/<pid>/status, in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) each thread of `pid` has used so far, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        used[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return used


def machine() -> dict[str, str | int]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count() or 0,
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


@dataclass(frozen=True)
class CpuSnapshot:
    """Busy CPU time of the whole machine and of the benchmark's own processes: this one, its
    waited-for children, and the live subprocesses whose pids are given."""

    wall: float
    machine_busy: float  # seconds, all cores (from /proc/stat)
    ours: float  # seconds

    @classmethod
    def take(cls, pids: tuple[int, ...] = ()) -> CpuSnapshot:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # without guest time (counted in user)
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        return cls(time.monotonic(), busy, ours + sum(process_cpu(pid) for pid in pids))


def process_cpu(pid: int) -> float:
    """utime + stime of a live (or not yet waited-for) process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def foreign_cpu(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU used by processes that are not the benchmark's, between two snapshots (after every
    subprocess has been waited for): other work on the machine skews the figures."""
    wall = after.wall - before.wall
    foreign = max(0.0, (after.machine_busy - before.machine_busy) - (after.ours - before.ours))
    cores = os.cpu_count() or 1
    return {
        "core_seconds": round(foreign, 2),
        "share_of_machine": round(foreign / (wall * cores), 3) if wall > 0 else 0.0,
    }


def wait_for_quiet(max_wait: float, threshold: float = 0.1, window: float = 2.0) -> float:
    """Wait (at most `max_wait` s) for a `window` in which other processes use less than `threshold`
    of the machine; the share seen last."""
    deadline = time.monotonic() + max_wait
    while True:
        before = CpuSnapshot.take()
        time.sleep(window)
        share = foreign_cpu(before, CpuSnapshot.take())["share_of_machine"]
        if share < threshold or time.monotonic() + window > deadline:
            return share


def code_version() -> dict[str, Any]:
    """The commit measured, and which files under src/ and tests/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "tests"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "changed": []}
    return {"commit": head or "unknown", "changed": [line[3:] for line in status.splitlines() if line]}


# py-spy --------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_profile(pid: int, out: Path, duration: float) -> subprocess.Popen[bytes] | None:
    """Sample `pid` for `duration` seconds (collapsed stacks); None when py-spy is not installed."""
    exe = py_spy()
    if exe is None:
        return None
    command = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(duration)))]
    command += [
        "--rate",
        str(PROFILE_RATE),
        "--format",
        "raw",
        "--nonblocking",
        "--threads",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_profile(process: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait for py-spy to write its file; its stderr when it failed."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=10)
    return "" if process.returncode == 0 else err.decode(errors="replace")[-500:]


EVENT_LOOP_FRAME = "Runner.run (asyncio/runners.py)"
EVENT_LOOP_LABEL = "the event loop itself (uvloop's C code: socket I/O, callbacks, timers)"


def _short(frame: str, *, line: bool = False) -> str:
    """'send (/x/site-packages/starlette/responses.py:123)' → 'send (starlette/responses.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, number = where.rpartition(":")
    if not path:
        path, number = where, ""
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    shown = f"{name} ({path})" if path else name
    if shown == EVENT_LOOP_FRAME and not line:
        return EVENT_LOOP_LABEL
    return f"{name} ({path}:{number})" if line and number else shown


# Frames under every sample of their thread say nothing about where the time goes.
ENTRY_FRAMES = frozenset(
    {
        "<module> (streamwise)",
        "main (streamwise/cli.py)",
        "Server.run (uvicorn/server.py)",
        "asyncio_run (uvicorn/_compat.py)",
        EVENT_LOOP_LABEL,
        "Thread._bootstrap (threading.py)",
        "Thread._bootstrap_inner (threading.py)",
        "Thread.run (threading.py)",
    }
)


@dataclass
class Profile:
    samples: int  # non-idle samples, all threads
    threads: list[tuple[str, float]]  # thread name: share of samples
    self_top: list[tuple[str, float]]  # functions on top of the stack: share of samples
    lines_top: list[tuple[str, float]]  # the same by source line
    inclusive_top: list[tuple[str, float]]  # functions anywhere on the stack, minus the common roots


def _thread_name(head: str) -> str:
    """'thread (0x7f..): Thread-3 (_connection_worker_thread)' → 'Thread (_connection_worker_thread)'."""
    name = head.partition(": ")[2] or head
    first, _, rest = name.partition(" ")
    first = first.rstrip("0123456789").rstrip("-")
    return f"{first} {rest}".strip()


def summarise_profile(path: Path, top: int = 12) -> Profile | None:
    """py-spy's raw output ('thread (id): name;frame;frame 12' per stack) → where the samples fell."""
    if not path.exists():
        return None
    threads: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for row in path.read_text(errors="replace").splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            thread = _thread_name(frames.pop(0))
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        threads[thread] += count
        leaf[_short(frames[-1])] += count
        lines[_short(frames[-1], line=True)] += count
        for frame in {_short(f) for f in frames}:
            anywhere[frame] += count
    if total == 0:
        return None
    inclusive = [(frame, n) for frame, n in anywhere.most_common() if frame not in ENTRY_FRAMES]
    return Profile(
        total,
        [(name, n / total) for name, n in threads.most_common(6)],
        [(frame, n / total) for frame, n in leaf.most_common(top)],
        [(frame, n / total) for frame, n in lines.most_common(top)],
        [(frame, n / total) for frame, n in inclusive[: top + 8]],
    )
