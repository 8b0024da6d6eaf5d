"""A process that has imported torch and samlab once, and forks a trainer per request.

The crash test starts it once, then for every kill point: sends a request (one JSON line
on stdin), reads the child's pid (one line on stdout), attaches strace to the child, and
lets it go by writing to the request's FIFO; the zygote reports the child's wait status
(one JSON line). Forking saves the seconds of importing torch for each of dozens of
trainers; the child has one thread, so strace counts every file operation it makes.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from samlab.train import TrainConfig, Trainer

torch.set_num_threads(1)
REPORTS = os.dup(1)  # the test reads the zygote's reports here


def child(request: dict) -> None:
    os.dup2(2, 1)  # what the trainer prints must not mix with the zygote's reports
    sys.stdout = sys.stderr
    with open(request["fifo"]) as fifo:  # blocks until the test has attached strace
        fifo.read()
    config = TrainConfig.from_dict(request["config"])
    resume = (config.run_dir / "checkpoint.pt").exists()
    Trainer(config, resume=resume, progress=False).fit()


def warm_up() -> None:
    """Train once here, so that each child starts warm: torch imports much lazily on a first
    optimizer step (seconds, and tens of thousands of system calls under strace)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(name="warm-up", dataset="digits", model="mlp", method="sam",
                             epochs=1, n_train=64, batch_size=32, runs_dir=tmp)
        Trainer(config, progress=False).fit()


def main() -> None:
    os.dup2(2, 1)  # the warm-up's "samlab: completed" must not reach the reports
    warm_up()
    sys.stdout.flush()
    os.dup2(REPORTS, 1)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(request)
            except BaseException as err:  # report, never fall back into the zygote's loop
                print(f"child failed: {err!r}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status)
                          else None, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status)
                          else None}), flush=True)


if __name__ == "__main__":
    main()
