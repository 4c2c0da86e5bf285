"""Start a process group of N processes on this machine, as N hosts would run it.

  python scripts/launch_local.py -n 2 -- python -m ov2seg_jax.main --config configs/synthetic.py \
      --workdir runs/two_hosts --mode train

Each process gets ``--config.distributed.coordinator_address=127.0.0.1:PORT`` (a free port),
``--config.distributed.num_processes=N`` and ``--config.distributed.process_id=I`` appended to the
command, and, with ``--platform cpu`` (the default), ``--devices`` CPU devices of its own and
gloo collectives, so N processes x D devices form one mesh of N*D devices. Their output is
forwarded line by line with a ``[I]`` prefix. When one process fails (or is killed) the others
are stopped and the launcher exits with that process's status; Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(devices: int, platform: str, base: dict | None = None) -> dict:
    """The environment of one local process: its own CPU devices, gloo collectives."""
    env = dict(os.environ if base is None else base)
    if platform == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
        env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def group_flags(port: int, n: int, index: int) -> list[str]:
    return [
        f"--config.distributed.coordinator_address=127.0.0.1:{port}",
        f"--config.distributed.num_processes={n}",
        f"--config.distributed.process_id={index}",
    ]


def _forward(pipe, out, prefix: bytes) -> None:
    """Copy ``pipe`` to ``out`` line by line (progress bars' carriage returns end lines too)."""
    pending = b""
    while chunk := pipe.read1(65536):
        pending += chunk.replace(b"\r", b"\n")
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                out.write(prefix + line + b"\n")
        out.flush()
    if pending.strip():
        out.write(prefix + pending + b"\n")
        out.flush()


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal S -> 128 + S, as a shell reports


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(command: list[str], n: int, devices: int, platform: str, grace: float = 10.0) -> int:
    """Run ``command`` as a group of ``n`` local processes; returns the group's exit status."""
    port = free_port()
    procs, threads = [], []
    for i in range(n):
        p = subprocess.Popen(
            [*command, *group_flags(port, n, i)],
            env=process_env(devices, platform),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(p)
        for pipe, out in ((p.stdout, sys.stdout.buffer), (p.stderr, sys.stderr.buffer)):
            t = threading.Thread(target=_forward, args=(pipe, out, f"[{i}] ".encode()))
            t.start()
            threads.append(t)
        print(f"[launch] process {i} of {n}: pid {p.pid}", file=sys.stderr, flush=True)
    status = 0
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                print(
                    f"[launch] process {i} exited with status {_status(code)}; stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                _stop(procs, grace)
                status = _status(code)
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        _stop(procs, grace)
        status = 128 + signal.SIGINT
    for t in threads:
        t.join()
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: launch_local.py [-n N] [--devices D] -- COMMAND ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--num-processes", type=int, default=2)
    parser.add_argument("--devices", type=int, default=2, help="CPU devices per process")
    parser.add_argument(
        "--platform", choices=("cpu", "any"), default="cpu", help="'any': leave devices to JAX"
    )
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command or args.num_processes < 1 or args.devices < 1:
        print("error: need a command, -n >= 1 and --devices >= 1", file=sys.stderr)
        return 2
    return launch(command, args.num_processes, args.devices, args.platform)


if __name__ == "__main__":
    sys.exit(main())
