"""Bad process-group settings: one line naming the field, exit status 2, no traceback, no hang."""

from __future__ import annotations

import time

import pytest

from tests.multihost import group

CASES = {
    "process_id_out_of_range": (
        ["--config.distributed.num_processes=2", "--config.distributed.process_id=2"],
        1,
        "config.distributed.process_id=2 is outside [0, 2)",
    ),
    "missing_coordinator": (
        ["--config.distributed.num_processes=2", "--config.distributed.process_id=0"],
        1,
        "needs config.distributed.coordinator_address=HOST:PORT",
    ),
    "unreachable_coordinator": (
        [
            "--config.distributed.num_processes=2",
            "--config.distributed.process_id=1",
            f"--config.distributed.coordinator_address=127.0.0.1:{group.free_port()}",
            "--config.distributed.init_timeout_s=3",
        ],
        1,
        "could not be reached within config.distributed.init_timeout_s=3 s",
    ),
    "no_cluster_to_detect": (
        ["--config.distributed.auto_detect=True"],
        1,
        "config.distributed.auto_detect=True: ",
    ),
    "global_batch_does_not_divide": (
        ["--config.train.batch_size=4"],
        3,
        "config.train.batch_size=4 (the global batch) does not divide over the 3 devices",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_setting_is_one_line_and_status_2(case, tmp_path):
    flags, devices, message = CASES[case]
    log = str(tmp_path / "run")
    command = [*group.MAIN, "--config", group.CONFIG, "--workdir", str(tmp_path / "w")]
    t = time.monotonic()
    proc = group.start([*command, "--mode", "train", *flags], log, devices)
    (code,) = group.wait([proc], timeout=120)
    elapsed = time.monotonic() - t
    err = group.tail(log)
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], err
    assert "Traceback" not in err, err
    if case == "unreachable_coordinator":  # waits init_timeout_s, not JAX's default 300 s
        assert elapsed < 60, elapsed
