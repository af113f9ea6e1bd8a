"""Many `python -m zsnb segment` processes on one folder and one --out: split, never repeated, nothing lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zsnb
from zsnb import cli, world

pytestmark = pytest.mark.usefixtures("one_thread")
N_IMAGES = 24
SEGMENT = ["-m", "zsnb", "segment", "--method", "randomwalk", "--backbone", "organism", "--device", "cpu",
           "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(zsnb.__file__).parents[1])}
ACCELERATE = shutil.which("accelerate", path=os.path.dirname(sys.executable))
SUMMARY = re.compile(r"(\d+) segmented here, (\d+) already done, (\d+) done by another process, (\d+) failed")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """N_IMAGES organism scenes, 32 x 32 PNGs."""
    root = tmp_path / "in"
    root.mkdir()
    for seed in world.EVAL_SEEDS[:N_IMAGES]:
        Image.fromarray((world.scene(seed, 32).image * 255).round().astype(np.uint8)).save(root / f"{seed}.png")
    return root


def start(folder: Path, out: Path, launcher: Sequence[str] = (sys.executable,)) -> subprocess.Popen:
    """One `python -m zsnb segment FOLDER --out OUT` (or under `launcher`), output captured."""
    return subprocess.Popen([*launcher, *SEGMENT, str(folder), "--out", str(out)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def watch(out: Path, procs: Sequence[subprocess.Popen], seen: dict[str, tuple[int, int]],
          until: Callable[[], bool] = lambda: False) -> None:
    """Poll OUT's records until every process has ended (or `until()`), failing if one is written twice.

    seen: {record name: (inode, mtime)} at first sight, filled in; a record written again (renamed over the
    first) has a new inode.
    """
    while True:
        running = any(p.poll() is None for p in procs)
        for record in out.glob("*.json"):
            try:
                stat = record.stat()
            except FileNotFoundError:
                continue
            now = (stat.st_ino, stat.st_mtime_ns)
            assert seen.setdefault(record.name, now) == now, f"{record.name} was written twice"
        if not running or until():
            return
        time.sleep(0.05)


def summary(proc: subprocess.Popen) -> tuple[int, int, int]:
    """(segmented here, already done, done by another) of a process that exited 0 with no failure."""
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "failed:" not in stderr, stderr[-2000:]
    here, already, other, failed = map(int, SUMMARY.search(stdout).groups())
    assert failed == 0 and here + already + other == N_IMAGES
    return here, already, other


def check_outputs(out: Path, seen: dict[str, tuple[int, int]], dead: str = "") -> None:
    """Every image has a readable label map, overlay and record, each record the one first seen; no claim is
    left, and no temporary file but a killed process's (`dead`: its <host>-<pid>)."""
    records = sorted(out.glob("*.json"))
    assert len(records) == N_IMAGES and sorted(seen) == [r.name for r in records]
    for record in records:
        stat = record.stat()
        assert seen[record.name] == (stat.st_ino, stat.st_mtime_ns), f"{record.name} was written again"
        assert json.loads(record.read_text())["segments"] >= 1
        base = str(record).removesuffix(".json")
        assert cli.read_labels(base + ".labels.png").shape == (32, 32)
        with Image.open(base + ".overlay.png") as im:
            assert im.size == (32, 32) and np.asarray(im).shape == (32, 32, 3)
    leftovers = [p.name for p in out.iterdir() if p.suffix in (".claim", ".taken", ".tmp")]
    assert all(dead and p.endswith(f".{dead}.tmp") for p in leftovers), leftovers


def signal_a_claimant(out: Path, sig: int, spare: int = 0) -> int:
    """Send `sig` to a process named in a claim (one holding an image), other than pid `spare` -> its pid."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a look may fall between one image's release and the next claim
        for claim in out.glob("*.claim"):
            try:
                pid = json.loads(claim.read_text())["pid"]
            except FileNotFoundError:  # released meanwhile
                continue
            if pid != spare:
                os.kill(pid, sig)
                return pid
        time.sleep(0.01)
    raise AssertionError("no process held a claim")


def free_port() -> int:
    """A TCP port free now, so that concurrent test runs on one machine do not share torchrun's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_claims_are_taken_over_a_dead_process_at_once_another_host_after_the_timeout(folder, tmp_path,
                                                                                             capsys):
    out, (a, b) = tmp_path / "out", sorted(folder.iterdir())[:2]
    out.mkdir()
    dead = dead_pid()
    (out / f"{a.name}.claim").write_text(json.dumps({"host": cli.HOST, "pid": dead, "time": time.time(),
                                                     "token": "dead"}))
    (out / f".{a.name}.labels.png.{cli.HOST}-{dead}.tmp").write_bytes(b"cut off")  # the dead process's
    far = time.time()
    (out / f"{b.name}.claim").write_text(json.dumps({"host": "elsewhere", "pid": os.getpid(), "time": far,
                                                     "token": "far"}))
    assert cli.main([*SEGMENT[2:], str(a), str(b), "--out", str(out), "--claim-timeout", "1"]) == 0
    assert "2 segmented here, 0 already done, 0 done by another process, 0 failed" in capsys.readouterr().out
    assert (out / f"{b.name}.json").stat().st_mtime >= far + 1  # waited for the other host's claim to time out
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith((".json", ".png"))) == []


def test_a_stale_claim_is_taken_over_by_one_process_only(tmp_path):
    base = tmp_path / "x.png"
    stale = json.dumps({"host": cli.HOST, "pid": dead_pid(), "time": time.time(), "token": "t"})
    (tmp_path / "x.png.claim").write_text(stale)
    assert cli._claim(base, cli.CLAIM_TIMEOUT_S)
    assert json.loads((tmp_path / "x.png.claim").read_text())["pid"] == os.getpid()
    (tmp_path / "x.png.claim").write_text(stale)  # what a second process found stale before the takeover
    assert not cli._claim(base, cli.CLAIM_TIMEOUT_S)  # it was taken over already (the marker of token t)
    cli._release(base)
    assert list(tmp_path.iterdir()) == []
    live = {"host": cli.HOST, "pid": os.getppid(), "time": time.time(), "token": "live"}
    (tmp_path / "x.png.claim").write_text(json.dumps(live))
    assert not cli._claim(base, cli.CLAIM_TIMEOUT_S)  # its process runs: left to it
    assert cli._claim(base, 0)  # unless older than the timeout
    cli._release(base)


def test_two_processes_split_the_folder(folder, tmp_path):
    out, seen = tmp_path / "out", {}
    procs = [start(folder, out) for _ in range(2)]
    watch(out, procs, seen)
    counts = [summary(p) for p in procs]
    assert sum(here for here, _, _ in counts) == N_IMAGES  # each image segmented by exactly one of them
    check_outputs(out, seen)


def test_three_processes_one_killed_one_stopped_then_the_run_repeated(folder, tmp_path, capsys):
    out, seen = tmp_path / "out", {}
    procs = {p.pid: p for p in (start(folder, out) for _ in range(3))}
    watch(out, list(procs.values()), seen, until=lambda: len(seen) >= N_IMAGES // 3)
    dead = signal_a_claimant(out, signal.SIGKILL)
    stopped = signal_a_claimant(out, signal.SIGTERM, spare=dead)  # as a scheduler stops a job
    procs.pop(dead).communicate(timeout=60)  # reaped: its pid is gone, so its claim is stale
    stdout, stderr = procs.pop(stopped).communicate(timeout=60)
    assert "interrupted" in stderr and "segmented here" not in stdout
    watch(out, list(procs.values()), seen)  # the last one takes over the killed one's claim and finishes
    assert summary(*procs.values())[0] >= 1
    check_outputs(out, seen, f"{cli.HOST}-{dead}")
    assert cli.main([*SEGMENT[2:], str(folder), "--out", str(out)]) == 0
    assert f"0 segmented here, {N_IMAGES} already done, 0 done by another process, 0 failed" in capsys.readouterr().out
    check_outputs(out, seen, f"{cli.HOST}-{dead}")


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate is not installed")
def test_accelerate_shards_and_a_plain_process_joins(folder, tmp_path):
    """2 CPU processes under `accelerate launch` (each takes only its half) and a plain one (any image)."""
    out, seen = tmp_path / "out", {}
    launch = start(folder, out, [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port",
                                 str(free_port())])
    plain = start(folder, out)
    watch(out, [launch, plain], seen)
    stdout, stderr = launch.communicate(timeout=120)
    assert launch.returncode == 0 and "failed:" not in stderr, stderr[-2000:]
    ranks = [tuple(map(int, m)) for m in SUMMARY.findall(stdout)]
    assert len(ranks) == 2 and all(failed == 0 and here + already + other == N_IMAGES // 2
                                   for here, already, other, failed in ranks), stdout
    assert summary(plain)[0] + sum(here for here, *_ in ranks) == N_IMAGES  # each image segmented once
    check_outputs(out, seen)


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate is not installed")
def test_under_accelerate_a_killed_worker_loses_nothing_and_the_relaunch_repeats_nothing(folder, tmp_path):
    """SIGKILL one of 2 accelerate workers mid-way (the launcher then stops the other); relaunching finishes."""
    out, seen = tmp_path / "out", {}
    launch = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    first = start(folder, out, launch)
    watch(out, [first], seen, until=lambda: len(seen) >= N_IMAGES // 4)
    dead = signal_a_claimant(out, signal.SIGKILL)
    first.communicate(timeout=120)
    assert first.returncode != 0 and len(seen) < N_IMAGES  # stopped part-way
    launch[-1] = str(free_port())
    again = start(folder, out, launch)
    watch(out, [again], seen)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0 and "failed:" not in stderr, stderr[-2000:]
    ranks = [tuple(map(int, m)) for m in SUMMARY.findall(stdout)]
    assert len(ranks) == 2 and sum(here + already for here, already, _, _ in ranks) == N_IMAGES, stdout
    assert sum(already for _, already, _, _ in ranks) == len(seen) - sum(here for here, *_ in ranks)
    check_outputs(out, seen, f"{cli.HOST}-{dead}")
