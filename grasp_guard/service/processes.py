"""A process's descendants, read from ``/proc`` (Linux): for the Ray backend's fault drills
and the load bench's memory figures, which look at the processes a service started."""

from __future__ import annotations

import os
from pathlib import Path


def descendants(root: int) -> dict[int, str]:
    """The processes below ``root`` (children, their children, ...), with their command lines
    (arguments joined by spaces; a process may rewrite its own, as Ray's workers do)."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        pid = int(entry.name)
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        cmdlines[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()

    def below(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == root:
                return True
        return False

    return {pid: cmdline for pid, cmdline in cmdlines.items() if below(pid)}


def rss_mib(pid: int) -> float:
    """The process's resident set now (VmRSS), in MiB; 0 when it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used so far (user + system), in seconds.

    Raises:
        OSError: the process has ended.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
