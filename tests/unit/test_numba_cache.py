"""Numba's cache folder for users who cannot write beside the package or in their home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from funnelrec import _numba_cache

KERNEL = """
import numba

@numba.njit(cache=True)
def plus_one(x):
    return x + 1
"""

CHILD = """
import os, sys
import funnelrec._numba_cache as cache  # funnelrec's import already ran the check (no-op here)

cache._writable = lambda path: False  # as for a service account: package and home read-only
chosen = cache.ensure_numba_cache_dir()
import numba.core.config

assert numba.core.config.CACHE_DIR == str(chosen), (numba.core.config.CACHE_DIR, chosen)
sys.path.insert(0, sys.argv[1])
import kernel

assert kernel.plus_one(1) == 2
print(chosen)
"""


def test_numba_caches_in_a_private_folder_when_defaults_are_read_only(tmp_path: Path) -> None:
    """The kernels compile and cache for a user who can write neither beside the package nor
    in a home folder (they used to fail at import: 'no locator available')."""
    (tmp_path / "kernel.py").write_text(KERNEL)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    chosen = Path(out.stdout.strip())
    assert chosen == tmp_path / f"funnelrec-numba-{os.getuid()}"
    assert (chosen.stat().st_mode & 0o777) == 0o700
    assert any(chosen.rglob("*.nbi")), "numba wrote no cache index there"


def test_a_cache_folder_others_can_write_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numba unpickles its cache: a folder another user could write is never reused."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    shared = tmp_path / f"funnelrec-numba-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)
    chosen = _numba_cache._private_dir()
    assert chosen != shared and chosen.parent == tmp_path
    assert (chosen.stat().st_mode & 0o077) == 0


def test_nothing_is_set_when_the_user_chose_or_a_default_is_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere")
    assert _numba_cache.ensure_numba_cache_dir() is None
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(_numba_cache, "_writable", lambda path: True)
    assert _numba_cache.ensure_numba_cache_dir() is None
    assert "NUMBA_CACHE_DIR" not in os.environ
