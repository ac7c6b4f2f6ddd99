"""An exclusive lock on a run folder, so that two ``rlexport train`` processes never write one run.

``RUN/.lock`` is locked with ``flock`` (advisory, exclusive, non-blocking) for as long as a
process trains or exports the run, and holds that process's PID for the error message of the
next one. The kernel releases a ``flock`` when its process dies however it dies, so the lock of a
killed run (a stale lock file naming a dead PID) is simply taken over; the file itself stays.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunFolderBusy(ValueError):
    """The run folder is locked by another live process."""


class RunFolderLock:
    """``with RunFolderLock(run_dir): ...`` holds ``run_dir/.lock`` or raises ``RunFolderBusy``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(
                f"run folder {self.path.parent} is in use by another rlexport train process (PID {holder}); "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunFolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
