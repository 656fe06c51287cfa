"""The phone's flash: atomic writes, safe names, both implementations alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phone.device.flash import DirectoryFlash, Flash, MemoryFlash
from phone.errors import UsageError


@pytest.fixture(params=["memory", "directory"])
def flash(request: pytest.FixtureRequest, tmp_path: Path) -> Flash:
    return MemoryFlash() if request.param == "memory" else DirectoryFlash(tmp_path / "flash")


def test_write_read_delete(flash: Flash) -> None:
    assert flash.read("ITLFile.tlv") is None
    flash.write("ITLFile.tlv", b"one")
    flash.write("ITLFile.tlv", b"two")
    assert flash.read("ITLFile.tlv") == b"two"
    assert flash.names() == ["ITLFile.tlv"]
    flash.delete("ITLFile.tlv")
    flash.delete("ITLFile.tlv")  # absent: no error
    assert flash.read("ITLFile.tlv") is None


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "", ".hidden", "x\0y"])
def test_unsafe_names_refused(flash: Flash, name: str) -> None:
    with pytest.raises(UsageError):
        flash.write(name, b"x")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flash = DirectoryFlash(tmp_path / "flash")
    flash.write("ITLFile.tlv", b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power lost"):
        flash.write("ITLFile.tlv", b"new")
    monkeypatch.undo()
    assert flash.read("ITLFile.tlv") == b"old"
    assert sorted(p.name for p in (tmp_path / "flash").iterdir()) == ["ITLFile.tlv"]


def test_flash_folder_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UsageError):
        DirectoryFlash(tmp_path / "f")
