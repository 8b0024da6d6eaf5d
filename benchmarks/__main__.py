"""Run every benchmark: ``python -m benchmarks [name ...]``; ``python -m benchmarks gpu``
is ``make gpu-check`` (:mod:`benchmarks.gpu`), not part of the default run.

Each module ``benchmarks/bench_<name>.py`` has ``run() -> list[Row]``. Results go to
``benchmarks/results/<name>.json``; the table of all of them to
``benchmarks/results/RESULTS.md`` and to the terminal.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from samlab.files import atomic_write_text

from .common import RESULTS, Row, machine, table, write_result

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if argv[:1] == ["gpu"]:
        from .gpu import main as gpu_check

        return gpu_check(argv[1:])
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in names:
        print(f"== {name}", flush=True)
        rows = importlib.import_module(f"benchmarks.bench_{name}").run()
        print(f"   wrote {write_result(name, rows).relative_to(HERE.parent)}", flush=True)

    # The table covers every result on disk, so a partial run keeps the others' rows.
    results = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.name == "gpu-dry.json":  # a CPU rehearsal of make gpu-check: no figures
            continue
        data = json.loads(path.read_text())
        results[data["benchmark"]] = [Row(**r) for r in data["rows"]]
    text = ("# Benchmark results\n\nWritten by `make bench`. Machine of the last run: "
            f"`{json.dumps(machine())}`\n\n" + table(results) + "\n")
    atomic_write_text(RESULTS / "RESULTS.md", text)
    print("\n" + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
