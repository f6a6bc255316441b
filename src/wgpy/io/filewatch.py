"""A file's removal as an event: inotify through libc (ctypes; the stdlib has no binding).

wgpyd exits when its UAPI socket file is removed, as wireguard-go does (it watches the file
with inotify too). Polling the file's inode instead woke the daemon twice a second forever.
"""

import ctypes
import os

IN_ATTRIB = 0x00000004  # the link count changed: unlinked, or renamed over
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
_WATCH = IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


class FileWatch:
    """Readable when `path` (the inode it names now) is unlinked, renamed, moved or has its
    attributes changed; the owner then looks at the path to tell which (`drain` first)."""

    def __init__(self, path: str) -> None:
        self._fd = _check(_libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
        try:
            _check(_libc.inotify_add_watch(self._fd, os.fsencode(path), _WATCH),
                   f"inotify_add_watch {path}")
        except BaseException:
            os.close(self._fd)
            raise

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> None:
        """Discard the queued events (what they say is read from the file system instead)."""
        while True:
            try:
                if not os.read(self._fd, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
