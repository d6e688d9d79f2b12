"""Unit tests of triton_python/busy_board.py: which instances of a model are running."""

import os
import subprocess
import sys
import time
from pathlib import Path

from triton_python.busy_board import BusyBoard, board_path, instance_slot, remove_stale

ROOT = Path(__file__).resolve().parents[2]


def test_an_instance_is_alone_only_while_no_other_runs(tmp_path):
    path = tmp_path / "board"
    first, second = BusyBoard(path, 0), BusyBoard(path, 1)
    assert first.claim(quiet_s=0)  # nobody else running
    assert not second.claim(quiet_s=0)  # the first still runs
    first.release()
    second.release()
    assert second.claim(quiet_s=0)  # both idle before: alone again
    assert not first.claim(quiet_s=0)  # two starting together both see each other
    first.release()
    second.release()
    first.close()
    second.close(remove=True)
    assert not path.exists()


def test_a_run_that_just_ended_means_load(tmp_path):
    first, second = BusyBoard(tmp_path / "board", 0), BusyBoard(tmp_path / "board", 1)
    assert first.claim(quiet_s=0.2)  # a fresh board: nothing ran
    first.release()
    # Another instance (or this one) starting right after a run ended: a queue, not a lone client.
    assert not second.claim(quiet_s=0.2)
    second.release()
    assert not first.claim(quiet_s=0.2)
    first.release()
    time.sleep(0.25)
    assert second.claim(quiet_s=0.2)  # quiet long enough: a lone request
    second.release()


def test_another_process_sees_the_claim(tmp_path):
    path = tmp_path / "board"
    mine = BusyBoard(path, 3)
    mine.claim(quiet_s=0)
    code = ("import sys; from pathlib import Path; from triton_python.busy_board import BusyBoard; "
            "sys.exit(0 if BusyBoard(Path(sys.argv[1]), 1).claim(quiet_s=0) else 7)")
    running = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT)
    assert running.returncode == 7  # it found this process's instance running
    mine.release()
    idle = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT)
    assert idle.returncode == 0
    mine.close(remove=True)


def test_a_board_per_model_and_server():
    assert board_path("scrfd_500m", 41) != board_path("scrfd_500m", 42)
    assert board_path("scrfd_500m", 41) != board_path("arcface_w600k_mbf", 41)
    assert "/" not in board_path("../x/y", 1).name


def test_the_slot_is_the_instance_index():
    assert instance_slot("scrfd_500m_0_1") == 1
    assert instance_slot("scrfd_500m_0_0") == 0
    assert instance_slot("arcface_w600k_mbf_12") == 12
    assert instance_slot("no_index_here") == 0


def test_boards_of_servers_that_are_gone_are_removed(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True)
    gone = board_path("scrfd_500m", int(finished.stdout), tmp_path)
    alive = board_path("scrfd_500m", os.getpid(), tmp_path)
    for path in (gone, alive):
        BusyBoard(path, 0).close()
    assert remove_stale(tmp_path) == 1
    assert alive.exists() and not gone.exists()
