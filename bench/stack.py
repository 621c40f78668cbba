"""The processes under test: a private redis-server, a fresh SQLite database, one web and one worker process.

Everything runs in a temporary directory, listens on 127.0.0.1 only, and is stopped (process group by
process group) when the `Stack` context exits, also on Ctrl-C or an error. Logs stay in the temporary
directory while the stack runs; on a failure their tails are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from asyncio import CancelledError
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from core.redis import redis_server_binary

__all__ = ["Stack", "HOST", "free_port", "cli_command", "raise_fd_limit", "stop_process"]

HOST = "127.0.0.1"
# --gc-stats: web/worker run under bench.gcprobe; "collected" gets their reports, "windows" the measured
# (wall-clock) windows of CpuMeter, so that only collections inside them are counted.
GC_STATS: dict = {"enabled": False, "tune": False, "collected": [], "windows": []}
_READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cli_command() -> list[str]:
    """The real `switchboard` CLI of this venv, else the module."""
    script = Path(sys.executable).parent / "switchboard"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (children inherit it); returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stop_process(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """SIGTERM the process's group, wait, then SIGKILL it (each child runs in a session of its own)."""
    if process is None or process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Stack:
    """Use as a context manager: `with Stack() as stack: ...`."""

    worker: bool = True
    # Redis with an append-only file in the workdir, so that `restart_redis()` keeps the data (soak).
    redis_persistent: bool = False
    env_overrides: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(init=False)
    redis_port: int = field(init=False, default=0)
    web_port: int = field(init=False, default=0)
    env: dict[str, str] = field(init=False, default_factory=dict)
    seed: dict = field(init=False, default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(init=False, default_factory=dict)
    _failed: bool = field(init=False, default=False)

    # -- addresses -------------------------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.web_port}/api/graphql"

    def token(self, user: str = "alice") -> str:
        return self.seed["users"][user]["token"]

    def gid(self, user: str = "alice") -> str:
        return self.seed["users"][user]["gid"]

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    # -- life cycle ------------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        self.workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
        try:
            self._start()
        except BaseException:
            self._failed = True
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, CancelledError)):  # type: ignore[arg-type]
            self._failed = True
        for name in ("web", "worker", *[n for n in self.processes if n not in ("web", "worker", "redis")], "redis"):
            stop_process(self.processes.get(name))
        for path in sorted(self.workdir.glob("gc-*.json")):
            GC_STATS["collected"].append({"process": path.stem.removeprefix("gc-"), **json.loads(path.read_text())})
        if self._failed:
            self._print_logs()
            print(f"bench: logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self) -> None:
        self.redis_port = free_port()
        self._start_redis()
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'switchboard.db'}",
            "SWITCHBOARD_DATA_DIR": str(self.workdir / "data"),
            "SWITCHBOARD_MOCK_MODEL_RESPONSES": "true",
            "SWITCHBOARD_AI_ACTION_RATE_LIMIT": "0",
            # One demo user stands for the whole crowd here: lift the per-user limits a real crowd never meets.
            "SWITCHBOARD_MAX_SUBSCRIPTIONS_PER_USER": "100000",
            "PYTHONUNBUFFERED": "1",
            **self.env_overrides,
        }
        self._cli(["db", "upgrade"])
        self.seed = json.loads(self._cli(["seed", "--json"]))
        self.web_port = free_port()
        self.processes["web"] = self.spawn("web", self.web_argv("web", self.web_port))
        if self.worker:
            self.processes["worker"] = self.spawn("worker", self.worker_argv("worker"))
        self._wait_web()

    def _start_redis(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.redis_persistent else ["--appendonly", "no"]
        self.processes["redis"] = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.redis_port), "--bind", HOST, "--save", "", *persistence,
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"), "--maxclients", "20000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._wait_redis()

    def restart_redis(self) -> float:
        """Stop Redis with SHUTDOWN (which writes the append-only file) and start it again on the same port and
        directory; returns the seconds it did not answer. Needs `redis_persistent`, else the data is gone."""
        if not self.redis_persistent:
            raise RuntimeError("restart_redis needs Stack(redis_persistent=True)")
        t0 = time.monotonic()
        with socket.create_connection((HOST, self.redis_port), timeout=10) as s:
            s.sendall(b"SHUTDOWN\r\n")
            s.recv(64)  # nothing on success: the server closes the connection once the file is written
        self.processes["redis"].wait(30)
        self._start_redis()
        return time.monotonic() - t0

    def web_argv(self, name: str, port: int) -> list[str]:
        """The command line of a web process called `name` listening on `port`."""
        return [*self._cli_for(name), "web", "--host", HOST, "--port", str(port)]

    def worker_argv(self, name: str) -> list[str]:
        """The command line of a worker process called `name` (its log and, with --gc-stats, its GC report)."""
        return [*self._cli_for(name), "worker"]

    def _cli_for(self, name: str) -> list[str]:
        if not GC_STATS["enabled"]:
            return cli_command()
        self.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        if GC_STATS["tune"]:
            self.env["BENCH_GC_TUNE"] = "3"  # seconds after start: the app's start-up is done by then
        return [sys.executable, "-m", "bench.gcprobe", str(self.workdir / f"gc-{name}.json")]

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a process in the stack's directory (cwd, so no developer `.env` is read); logs to <name>.log."""
        with open(self.workdir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                argv, env=env or self.env, cwd=self.workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def _cli(self, args: list[str]) -> str:
        result = subprocess.run(
            [*cli_command(), *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            (self.workdir / f"cli-{args[0]}.log").write_text(result.stderr)
            last = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), "")
            raise RuntimeError(f"switchboard {' '.join(args)} failed ({result.returncode}): {last.strip()}")
        return result.stdout

    def _wait_redis(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.redis_port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def _wait_web(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode} during start-up")
            try:
                if httpx.get(f"{self.http_url}/-/readiness", timeout=2).status_code == 200 and self._worker_ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("web process not ready within 60 s")

    def _worker_ready(self) -> bool:
        """arq writes `<queue>:health-check` at its first poll, i.e. once its start-up is done."""
        if not self.worker:
            return True
        with socket.create_connection((HOST, self.redis_port), timeout=2) as s:
            s.sendall(b"EXISTS switchboard:queue:health-check\r\n")
            return s.recv(16).startswith(b":1")

    def _print_logs(self) -> None:
        for log in sorted(self.workdir.glob("*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            print(f"----- {log.name} (tail) -----\n{tail}", file=sys.stderr)

    # -- observation -----------------------------------------------------------------------------------
    def rss_kb(self, name: str) -> int:
        """VmRSS of a process, in KB (from /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.pid(name)}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {name}")

    def redis_connections(self, name: str) -> int:
        """TCP connections the process holds to the private Redis (counted by the kernel, via psutil)."""
        conns = psutil.Process(self.pid(name)).net_connections(kind="tcp")
        return sum(1 for c in conns if c.raddr and c.raddr.port == self.redis_port and c.status == "ESTABLISHED")
