"""The locks on `<stage>/run.lock` that keep two runs of a stage apart, including a killed run's leftover processes.

Two POSIX record locks (fcntl F_SETLK) on the one file, on two bytes:
- byte 0, exclusive: the command running the stage (the runner). A record lock belongs to the process that took it:
  it is not inherited by the processes the runner forks (datatrove's multiprocess Manager, fork-started workers),
  and the kernel drops it while the process exits, before its parent can reap it. (An flock, used before, is shared
  by every process that inherits the descriptor: datatrove's Manager, forked even for `workers = 1`, kept it held
  after its runner was killed, for ever after a `kill -9` of the runner alone, and for a moment after a kill of the
  whole process group, so a rerun right after the kill was refused.)
- byte 1, shared: every process that runs tasks of the stage other than the runner (local executor workers, from
  `TaskLock`), for the rest of its life. A new runner, once it holds byte 0, waits a bounded time for byte 1 to be
  free: processes of a killed run that are still exiting are waited for; live ones (still writing the stage's
  files) are named, and the rerun is refused instead of writing the same files beside them.

Closing any descriptor of the file drops the process's record locks on it: nothing else in a process that holds one
may open and close `run.lock` (readers of its text use another process, or hold nothing).
Linux only (the struct flock layout of F_GETLK, /proc, pidfd), like the rest of the local executor's checks.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

RUNNER_BYTE = 0
TASKS_BYTE = 1
# struct flock on Linux: short l_type, short l_whence, (pad) off_t l_start, off_t l_len, pid_t l_pid, (pad)
_FLOCK = struct.Struct("@hhqqi4x")


def try_lock(fd: int, byte: int, exclusive: bool) -> bool:
    """Take the record lock on one byte of `fd` without waiting. False when another process holds a conflicting one."""
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB, 1, byte, os.SEEK_SET)
    except (BlockingIOError, PermissionError):  # EAGAIN or EACCES, as the platform reports a held record lock
        return False
    return True


def holder_pid(fd: int, byte: int) -> int | None:
    """The pid of a process holding a lock on `byte` that conflicts with an exclusive one (F_GETLK); None if free.
    0 when the holder is not on this host (NFS reports no pid)."""
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
    l_type, _, _, _, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    return None if l_type == fcntl.F_UNLCK else pid


def describe(pid: int) -> str:
    """`pid 123 (python -m pipeline run ingest ...)`: the pid and the start of its command line, from /proc."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({cmd[:100] + ('...' if len(cmd) > 100 else '')})"


def wait_for_exit(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for process `pid` to exit, on a pidfd (woken by the exit itself). True if it exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (Linux < 5.3): look every 50 ms whether it is still there
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False
    try:
        ready, _, _ = select.select([pidfd], [], [], max(0.0, seconds))
        return bool(ready)
    finally:
        os.close(pidfd)


def wait_for_task_processes(fd: int, seconds: float, on_wait: Callable[[int], None]) -> list[int]:
    """Wait up to `seconds` until no process holds the tasks byte of `fd` (see the module doc). `on_wait(pid)` is
    called the first time each holder is waited for. Returns the pids still holding it at the deadline ([] when
    free), or [0] for a holder on another host, which cannot be waited for."""
    deadline = time.monotonic() + seconds
    seen: set[int] = set()
    while (pid := holder_pid(fd, TASKS_BYTE)) is not None:
        if pid <= 0:
            return [0]
        if pid not in seen:
            seen.add(pid)
            on_wait(pid)
        if not wait_for_exit(pid, deadline - time.monotonic()):
            return live_holders(fd, pid)
    return []


def live_holders(fd: int, first: int) -> list[int]:
    """`first` and the other processes holding the tasks byte of `fd`'s file, from /proc/locks (F_GETLK names only
    one holder at a time)."""
    target = os.fstat(fd)
    file_id = f"{os.major(target.st_dev):02x}:{os.minor(target.st_dev):02x}:{target.st_ino}"
    pids = [first]
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return pids
    for line in lines:  # "1: POSIX  ADVISORY  READ 1234 fe:00:3047512 1 1": kind, pid, file, first and last byte
        parts = line.split()
        if len(parts) < 8 or parts[1] != "POSIX" or parts[5] != file_id or not parts[4].isdigit():
            continue
        if int(parts[6]) <= TASKS_BYTE and (parts[7] == "EOF" or int(parts[7]) >= TASKS_BYTE):
            if int(parts[4]) not in pids:
                pids.append(int(parts[4]))
    return pids


# (lock path, pid) -> descriptor holding the tasks byte: one per process, kept open (closing it drops the lock).
_TASK_LOCKS: dict[tuple[str, int], int] = {}
_TASK_LOCKS_GUARD = threading.Lock()


class TaskLock:
    """First step of every phase on the local executor: in a process other than the runner (a worker), holds the
    tasks byte of the stage's `run.lock` for the rest of that process's life, and ends the process when the runner
    is gone (killed with `kill -9`, or by the OOM killer): its tasks would be run again by the rerun, and a worker
    still writing beside the rerun would mix two runs' files. Passes the pipeline's data through untouched.

    A plain callable, not a datatrove PipelineStep: it has no stats, so the stage's stats are the same with it."""

    def __init__(self, lock_path: Path, runner_pid: int):
        self.lock_path = str(lock_path)
        self.runner_pid = runner_pid

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        pid = os.getpid()
        if pid == self.runner_pid:  # tasks in the runner's own process (workers = 1): byte 0 covers them
            return data
        with _TASK_LOCKS_GUARD:
            if (self.lock_path, pid) not in _TASK_LOCKS:
                fd = os.open(self.lock_path, os.O_RDWR)
                if not try_lock(fd, TASKS_BYTE, exclusive=False):
                    os.close(fd)
                    raise RuntimeError(f"{self.lock_path}: cannot take the tasks lock (held exclusively)")
                _TASK_LOCKS[(self.lock_path, pid)] = fd
                _watch_runner(self.runner_pid)
        return data

    def __repr__(self) -> str:
        return f"TaskLock({self.lock_path!r}, runner pid {self.runner_pid})"


def _watch_runner(runner_pid: int) -> None:
    """End this worker process as soon as the runner process exits (a daemon thread blocked on the runner's pidfd).
    A runner that ends normally joins or terminates its workers first, so this fires only when it was killed."""
    try:
        pidfd = os.pidfd_open(runner_pid)
    except ProcessLookupError:  # the runner is already gone
        os.kill(os.getpid(), signal.SIGKILL)
        return
    except OSError:  # no pidfd (Linux < 5.3): the worker outlives a killed runner, and the tasks byte guards the rerun
        return

    def watch() -> None:
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="mapcc-runner-watch", daemon=True).start()


# --- the runner's own processes: forked children die with it, SIGTERM stops its tasks ---------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_holding_pids: set[int] = set()  # processes that hold a runner lock now (held_by_this_process)


def _die_with_the_runner() -> None:
    """After os.fork() in a process that holds a runner lock: the child (datatrove's multiprocess Manager, forked
    even for workers = 1; fork-started workers) gets SIGKILL when the runner dies, instead of living on as an
    orphan after a `kill -9` of the runner alone. Forkserver/spawn workers are started without os.fork here; they
    end through TaskLock's watch."""
    parent = os.getppid()
    if parent not in _holding_pids:
        return
    _holding_pids.clear()  # the child holds no runner lock itself
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the runner died before prctl: no signal will come
        os._exit(1)


if sys.platform == "linux":
    os.register_at_fork(after_in_child=_die_with_the_runner)


@contextmanager
def held_by_this_process(on_sigterm: Callable[[], None]) -> Iterator[None]:
    """While the runner lock is held: children forked by this process die with it (`_die_with_the_runner`), and
    SIGTERM (Slurm's scancel and time limit, `kill`) is turned into SystemExit(143) in the main thread after calling
    `on_sigterm`, so the executor's own cleanup runs: datatrove's Pool terminates and joins its workers and its
    Manager is shut down before the lock is released. Ctrl-C (SIGINT) already does this as KeyboardInterrupt."""
    pid = os.getpid()
    _holding_pids.add(pid)
    main = threading.current_thread() is threading.main_thread()

    def stop(signum, frame):
        on_sigterm()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        _holding_pids.discard(pid)
