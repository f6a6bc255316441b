"""How often a thread went to sleep: the kernel's count, to show a loop does not poll."""

import threading


def voluntary_switches(thread: threading.Thread) -> int:
    """Voluntary context switches of `thread` (this process) so far: one per sleep."""
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")
