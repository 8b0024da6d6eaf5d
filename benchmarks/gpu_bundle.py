"""What ``make gpu-check`` needs on a GPU machine that has torch but no network.

``python -m benchmarks.gpu_bundle`` writes ``.gpu/`` (git ignores it):

- ``.gpu/data/cifar10-jpeg.npz``: a class-balanced part of the JPEG copy of CIFAR-10
  (``--train`` training and ``--test`` test images, in the file's own format), small
  enough to travel with the working tree;
- ``.gpu/whl/``: wheels, for that machine's Python (``--python``), of the packages samlab
  and the notebook runner need beyond what the machine has (:func:`packages`), each at the
  version installed here, so that the check runs what the tests ran;

and prints the command to run there. The working tree and ``.gpu/`` must stay under the
64 MiB a lent machine accepts; the script says the total and refuses to go over it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import numpy as np

from .common import REPO, jpeg_cifar10

BUNDLE = REPO / ".gpu"
LIMIT = 64 * 2**20
#: What the notebook runner needs besides samlab: the closure of these and of samlab's own
#: requirements, less what the GPU machines have, is what travels.
ROOTS = ("samlab", "nbclient", "nbformat", "ipykernel", "jupytext")
#: Installed on the GPU machines' image (../.library/device/KINDS.md, read 2026-11-17).
DEVICE_HAS = frozenset("""
    attrs certifi charset-normalizer click cloudpickle contourpy cycler filelock fonttools
    fsspec idna jinja2 joblib kiwisolver markdown-it-py markupsafe matplotlib mdurl mpmath
    narwhals networkx numpy packaging pandas pillow pip psutil pygments pyparsing
    python-dateutil pyyaml requests scikit-learn scipy setuptools six sympy threadpoolctl
    torch torchvision tqdm triton typing-extensions urllib3 wheel
""".split())
#: Imported only if present by IPython, ipykernel and ipywidgets: left behind (11 MB).
OPTIONAL = frozenset({"jedi", "parso", "debugpy", "widgetsnbextension"})


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def packages(python: str) -> list[str]:
    """``name==version`` of every package to carry, as installed here."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    env = {"python_version": python, "python_full_version": f"{python}.0",
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    seen, todo, pins = set(), list(ROOTS), []
    while todo:
        name = _canonical(todo.pop())
        if name in seen or name in DEVICE_HAS or name in OPTIONAL:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here: run `make .venv/.stamp-test` "
                             "first (the bundle pins what the tests use)") from None
        if name != "samlab":
            pins.append(f"{name}=={dist.version}")
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return sorted(pins)


PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
COMMAND = (
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
    "--target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD "
    "SAMLAB_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 && nvidia-smi -L; "
    "if command -v make >/dev/null; then make gpu-check PY=python3; "
    "else python3 -m benchmarks gpu; fi; rc=$?; cp benchmarks/results/gpu.json $OUT/ "
    "2>/dev/null; exit $rc"
)


def write_subset(source: Path, target: Path, n_train: int, n_test: int) -> None:
    """The first ``n/10`` images of each class of each split (the file is class-ordered),
    in the JPEG copy's own format."""
    out = {}
    with np.load(source, allow_pickle=False) as z:
        out["classes"] = z["classes"]
        for split, n in (("train", n_train), ("test", n_test)):
            labels, offsets, jpeg = z[f"{split}_labels"], z[f"{split}_offsets"], z[f"{split}_jpeg"]
            per_class = n // 10
            keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
            blobs = [jpeg[offsets[i]:offsets[i + 1]] for i in keep]
            out[f"{split}_jpeg"] = np.concatenate(blobs)
            out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
            out[f"{split}_labels"] = labels[keep]
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **out)


def download_wheels(folder: Path, python: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + packages(python), check=True)


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=REPO, capture_output=True,
                           check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files
               if f and (REPO / f.decode()).is_file())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_bundle",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=46_000, help="training images (default 46000)")
    p.add_argument("--test", type=int, default=2_000, help="test images (default 2000)")
    p.add_argument("--python", default="3.12", help="the GPU machine's Python (default 3.12)")
    args = p.parse_args(argv)
    source = jpeg_cifar10()
    if source is None:
        raise SystemExit("the JPEG copy of CIFAR-10 was not found (SAMLAB_DATA, or "
                         "../shared/data beside the repository)")
    write_subset(source, BUNDLE / "data" / source.name, args.train, args.test)
    download_wheels(BUNDLE / "whl", args.python)
    total = tracked_bytes() + sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"wrote {BUNDLE}; the working tree with it: {total / 2**20:.1f} MiB "
          f"(limit {LIMIT / 2**20:.0f} MiB)")
    if total > LIMIT:
        print("over the limit: pass a smaller --train", file=sys.stderr)
        return 1
    print(f"on the GPU machine, carry .gpu and run:\n  {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
