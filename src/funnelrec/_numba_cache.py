"""Numba's on-disk cache in a folder the current user can write.

Every ``@njit(cache=True)`` kernel needs a writable cache folder. Numba writes beside the
source (``__pycache__``) and, when that is read-only (a system-wide install), falls back to
``~/.cache/numba``; with neither writable (a service account without a home) importing the
kernels fails. :func:`ensure_numba_cache_dir` runs when ``funnelrec`` is imported, before
any submodule imports numba (numba reads ``NUMBA_CACHE_DIR`` once, at its own import), and in
that case points numba at a private folder under the temporary directory.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created or written to (its nearest existing ancestor decides
    when it does not exist yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def _user_cache_dir() -> Path | None:
    """Numba's fallback location (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``), or None
    when the user has no home directory."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no HOME and no passwd entry
        return None
    return base / "numba"


def _private_dir() -> Path:
    """``$TMPDIR/funnelrec-numba-<uid>``, kept across runs so kernels compile once, but only
    when it is a real folder owned by this user and writable by no one else: numba loads its
    cache with pickle, so a folder another user controls would run their code. Otherwise a
    fresh temporary folder (no reuse, still correct)."""
    uid = os.getuid()
    path = Path(tempfile.gettempdir()) / f"funnelrec-numba-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o022:
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="funnelrec-numba-"))


def ensure_numba_cache_dir() -> Path | None:
    """Set ``NUMBA_CACHE_DIR`` to a private writable folder when numba's own locations are
    not writable; returns the folder set, or None when nothing needed setting (the variable
    is already set, numba is already imported, or a default location is writable)."""
    if os.environ.get("NUMBA_CACHE_DIR") or "numba" in sys.modules:
        return None
    user_dir = _user_cache_dir()
    if _writable(PACKAGE_DIR / "__pycache__") or (user_dir is not None and _writable(user_dir)):
        return None
    path = _private_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return path
