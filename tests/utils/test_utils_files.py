"""Output files: atomic writes and the lock shared by processes."""

import os
import subprocess
import sys
import time

import pytest

from sklearn_gastric.utils import atomic_output, file_lock, write_text_atomic


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_write_leaves_the_previous_file(tmp_path, error):
    target = tmp_path / "result.txt"
    target.write_text("previous")
    with pytest.raises(error):
        with atomic_output(target) as temporary:
            temporary.write_text("half of the new")
            raise error
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_a_new_file_appears_complete_with_the_usual_permissions(tmp_path):
    target = tmp_path / "new.txt"
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".")
        assert not target.exists()
        temporary.write_text("complete")
    assert target.read_text() == "complete"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert write_text_atomic(target, "again").read_text() == "again"


@pytest.mark.skipif(os.name != "posix", reason="fcntl")
def test_the_lock_keeps_two_processes_apart(tmp_path):
    lock, log = tmp_path / ".lock", tmp_path / "log"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sklearn_gastric.utils import file_lock\n"
            f"with file_lock({str(lock)!r}):\n"
            f"    open({str(log)!r}, 'a').write('held\\n')\n"
            "    time.sleep(1.0)\n"
            f"    open({str(log)!r}, 'a').write('released\\n')\n",
        ]
    )
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    with file_lock(lock):
        with open(log, "a") as file:
            file.write("second\n")
    assert holder.wait(timeout=60) == 0
    assert log.read_text().splitlines() == ["held", "released", "second"]
