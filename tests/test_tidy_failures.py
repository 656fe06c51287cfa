"""Tidy failure paths (issue 13, item 5): a killed write leaves no temporary file behind after
the next open of that flash or lab folder; key folders are 0700 whatever the umask; private
keys are never readable by others."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from keypool import pooled_keys

from phone.cluster.records import ClusterSpec
from phone.cluster.store import edit_lab, init_lab
from phone.device.flash import DirectoryFlash

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the worst case: everything created world-writable unless chosen
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _killed_mid_write(folder: Path) -> str:
    """Run a DirectoryFlash write in another process, stop it after its temporary file is
    written and before the rename (os.replace never returns), kill -9 it; return the name of
    the temporary file it left."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from phone.device.flash import DirectoryFlash
        flash = DirectoryFlash(Path({str(folder)!r}))
        def hang(*args, **kwargs):
            print("written", flush=True)
            time.sleep(60)
        os.replace = hang
        flash.write("ITLFile.tlv", b"x" * 4096)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "written"
            leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    assert len(leftovers) == 1, leftovers
    return leftovers[0]


def test_a_killed_flash_write_leaves_nothing_after_the_next_open(tmp_path: Path) -> None:
    folder = tmp_path / "flash"
    DirectoryFlash(folder).write("CTLFile.tlv", b"installed")
    leftover = _killed_mid_write(folder)
    assert (folder / leftover).exists()  # what kill -9 leaves
    flash = DirectoryFlash(folder)
    assert not (folder / leftover).exists()
    # The sweep takes only temporary files: the installed file and the old ITL state stay.
    assert flash.read("CTLFile.tlv") == b"installed"
    assert flash.read("ITLFile.tlv") is None


def test_the_sweep_takes_only_names_of_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "flash"
    folder.mkdir()
    for name in ("ITLFile.tlv", ".hidden", "notes.tmp", ".ITLFile.tlv.k2j3.tmp"):
        (folder / name).write_bytes(b"x")
    DirectoryFlash(folder)
    assert sorted(p.name for p in folder.iterdir()) == [".hidden", "ITLFile.tlv", "notes.tmp"]


def test_a_flash_folder_is_0700_and_its_keys_0600_under_umask_000(
    tmp_path: Path, open_umask: None
) -> None:
    folder = tmp_path / "flash"
    flash = DirectoryFlash(folder)
    flash.write("lsc.key", b"-----BEGIN PRIVATE KEY-----")
    assert _mode(folder) == 0o700
    assert _mode(folder / "lsc.key") & 0o077 == 0


def _lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab"
    init_lab(path, ClusterSpec(), now=NOW, keys=pooled_keys())
    return path


def test_lab_key_folders_are_0700_and_keys_0600_under_umask_000(
    tmp_path: Path, open_umask: None
) -> None:
    keys = _lab(tmp_path) / "clusters" / "cluster1" / "keys"
    assert _mode(keys) == 0o700
    pems = list(keys.glob("*.pem"))
    assert pems and all(_mode(p) == 0o600 for p in pems)


def test_a_key_folder_opened_wide_is_closed_again_at_the_next_save(tmp_path: Path) -> None:
    path = _lab(tmp_path)
    keys = path / "clusters" / "cluster1" / "keys"
    os.chmod(keys, 0o777)
    with edit_lab(path) as lab:
        lab.cluster().set_parameter("nonce-validity", "300", now=NOW)
    assert _mode(keys) == 0o700


def test_a_killed_lab_write_leaves_nothing_after_the_next_change(tmp_path: Path) -> None:
    path = _lab(tmp_path)
    cluster = path / "clusters" / "cluster1"
    # What write_private_file leaves when killed between mkstemp and the rename.
    left = [
        cluster / ".cluster.json.a1b2c3.tmp",
        cluster / "keys" / ".x.pem.d4e5.tmp",
        path / ".lab.json.f6g7.tmp",
    ]
    for leftover in left:
        leftover.write_bytes(b"half")
    time.sleep(0)  # nothing to wait for: the sweep needs the lock, not time
    with edit_lab(path) as lab:
        lab.cluster().set_parameter("nonce-validity", "300", now=NOW)
    assert [p for p in left if p.exists()] == []
    assert (cluster / "cluster.json").is_file()
