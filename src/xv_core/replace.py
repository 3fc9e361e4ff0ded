"""Writing a file by replacing it: the checks and the mode every atomic writer shares.

Writers stage their bytes in a temporary file beside the target and rename it over the target,
so that a failure leaves nothing half-written.  A rename would also replace a device or a pipe
(``-o /dev/full``) and give the file ``mkstemp``'s private mode: :func:`replace_problem` refuses
the first, :func:`give_mode` gives the staged file the replaced file's mode, or what the umask
gives a new file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def replace_problem(path: Path) -> str | None:
    """Why a file written at ``path`` could not replace what is there, or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # nothing there yet (or unreadable: the write itself will say)
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if not stat.S_ISREG(mode):
        return "it is not a regular file (a device, a pipe or a socket), which is never replaced"
    return None


def give_mode(fd: int, path: Path) -> None:
    """Give the staged file ``fd`` the mode of the file at ``path``, or a new file's."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    os.fchmod(fd, mode)


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux): setting
    it to read it would, for that instant, give files other threads make another mode."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # elsewhere: set and restore (the strictest mode meanwhile)
    os.umask(umask)
    return umask
