"""The warm worker: what runs inside the sandbox (standard library only).

`benchkit.sandbox` starts it as a script (``python -I worker.py``), with this directory bound
read-only at /sandbox under bubblewrap. It reads one job per line (JSON) on stdin and answers
one outcome per line on stdout. For each job it forks a child that closes every descriptor it
inherited, points 0/1/2 at /dev/null, works in a fresh scratch directory under rlimits and
applies the reference harness's reliability guard (harness.py). What then runs and decides the
verdict is the job's harness, by name from `HARNESSES`:

* "exec" (HumanEval, exec_harness.py): the program runs on a thread started from C; the pass
  line, with a per-job nonce, is written by that C chain only if `exec` returned normally;
* "lcb" (LiveCodeBench, lcb_harness.py): the child runs the tests' inputs one at a time and
  sends back what the program produced; the expected outputs stay in the worker.

A harness answers {status, error_type, message, seconds, details}, `details` its own results.
After each job every process the child left behind is killed (processes.py) and the scratch
directory removed.
"""

import contextlib
import ctypes
import gc
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory out

from exec_harness import run_exec_job  # noqa: E402
from harness import MESSAGE_LIMIT, prepare_confinement  # noqa: E402
from lcb_harness import run_lcb_job  # noqa: E402
from preload import preload  # noqa: E402
from processes import INSIDE_BWRAP  # noqa: E402

HARNESSES = {  # a Job's `harness`: (job, scratch root, Landlock ruleset) -> outcome
    "exec": run_exec_job,  # HumanEval: the program holds its own tests
    "lcb": run_lcb_job,  # LiveCodeBench: tests one by one, compared here
}
BOUND = (sys.prefix, sys.base_prefix, os.path.dirname(os.path.abspath(__file__)))
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4


def main():
    sys.set_int_max_str_digits(50000)  # as LiveCodeBench's grader, for huge integer outputs
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # numpy's BLAS threads: one, not one per core, in every worker
    preload()  # what the reference graders had imported, so each forked program finds it loaded
    gc.freeze()  # the garbage collector of a forked program never walks (so never copies) these
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _become_subreaper()
    _not_dumpable()
    scratch_root = tempfile.mkdtemp(prefix="benchkit-")
    ruleset = prepare_confinement()
    for line in proto_in:
        job = json.loads(line)
        outcome = run_job(job, scratch_root, ruleset)
        if INSIDE_BWRAP:  # nothing a program leaves behind reaches the next program
            _empty("/tmp", keep=scratch_root)
            _empty("/dev/shm")
            if not all(map(os.path.isdir, BOUND)):
                return  # a program moved the Python directories away: the host starts a new worker
        outcome["id"] = job["id"]
        proto_out.write(json.dumps(outcome) + "\n")
        proto_out.flush()


def _empty(directory, keep=None):
    """Remove what programs left in `directory`, never crossing into another filesystem: the
    venv or Python may be bound read-only inside /tmp (a checkout under /tmp), and walking
    that bind after every program would cost a walk over every installed file."""
    with contextlib.suppress(OSError):
        _remove_children(directory, os.stat(directory).st_dev, keep)


def _remove_children(directory, device, keep=None):
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.path == keep:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and entry.stat(follow_symlinks=False).st_dev != device:
                    continue  # a mount point (a read-only bind): not ours to empty
            except OSError:
                continue
            if is_dir:
                _remove_children(entry.path, device)
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # fails, as it should, on the parents of a bind
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _not_dumpable():
    """No program may read this worker's memory (it holds each job's nonce and expected
    outputs) through /proc/<pid>/mem or process_vm_readv: without CAP_SYS_PTRACE in the
    sandbox's namespace (programs have none), the kernel refuses them for a non-dumpable
    process. Programs inherit the flag; their own memory stays theirs to read."""
    with contextlib.suppress(OSError):
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _become_subreaper():
    """Orphans of a job re-parent to this worker, so `kill_descendants` finds detached ones too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def run_job(job, scratch_root, ruleset=-1):
    """The job's outcome by its harness; an unknown harness is a crashed program, not a hang."""
    run = HARNESSES.get(job.get("harness"))
    if run is None:
        message = "failed: no harness %r in the sandbox worker (known: %s)" % (
            job.get("harness"),
            ", ".join(sorted(HARNESSES)),
        )
        return {"status": "crashed", "error_type": None, "message": message[:MESSAGE_LIMIT], "seconds": 0.0}
    return run(job, scratch_root, ruleset)


if __name__ == "__main__":
    main()
