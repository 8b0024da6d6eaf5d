"""What samlab can use on this machine: ``samlab doctor``'s report.

Versions, CUDA, the JupyterLab widget front-ends, the data directory (CIFAR-10 with its
md5s checked), and which notebooks need what. Light to import: torch only inside the
functions that need it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

import samlab
from samlab.paths import CIFAR10_FILES, CIFAR10_FOLDER, JPEG_NAME, data_dir

# Distribution names whose versions `samlab doctor` reports, in the order it reports them.
PACKAGES = (
    "numpy",
    "scikit-learn",
    "tqdm",
    "torch",
    "torchvision",
    "matplotlib",
    "plotly",
    "ipywidgets",
    "anywidget",
    "jupyterlab",
    "jupytext",
)


# Where JupyterLab finds the browser side of each widget library.
IPYWIDGETS_LABEXTENSION = "@jupyter-widgets/jupyterlab-manager"
ANYWIDGET_LABEXTENSION = "anywidget"


#: What each notebook needs beyond the library: a GPU, a dataset download.
NOTEBOOK_NEEDS: dict[str, dict[str, bool]] = {
    "01_sam_on_a_saddle": {"cuda": False, "cifar10": False},
    "02_why_sam_normalizes": {"cuda": False, "cifar10": False},
    "03_stable_sam": {"cuda": False, "cifar10": False},
    "04_sam_late_in_training": {"cuda": False, "cifar10": False},
    "05_resnet20_cifar10_live": {"cuda": True, "cifar10": True},  # its lab and paper sizes
}
#: Notebooks with a CPU size that needs neither (notebook 05's quick size).
CPU_SIZE = {"05_resnet20_cifar10_live": "quick size on a CPU, no download"}


def doctor_report() -> dict[str, Any]:
    """Everything ``samlab doctor`` reports, as plain JSON-serialisable data."""
    versions = {name: _version(name) for name in PACKAGES}
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "samlab": {"version": samlab.__version__, "location": str(Path(samlab.__file__).parent)},
        "packages": versions,
        "cuda": _cuda_report(),
        "widgets": _widgets_report(versions),
        "data": _data_report(),
        "notebooks": NOTEBOOK_NEEDS,
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_report() -> dict[str, Any]:
    try:
        import torch  # deliberately here: importing torch takes seconds
    except Exception as error:  # a broken CUDA install fails at import with many error types
        return {"available": False, "torch_cuda": None, "devices": [], "error": repr(error)}
    available = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "available": available,
        "torch_cuda": torch.version.cuda,  # None for a CPU-only build of torch
        "devices": devices if available else [],
        "error": None,
    }


def _labextension_dirs() -> list[Path]:
    """The directories JupyterLab searches for prebuilt extensions (user, env, system)."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    return [Path(p) for p in jupyter_path("labextensions")]


def _find_labextension(name: str) -> str | None:
    for root in _labextension_dirs():
        if (root / name / "package.json").is_file():
            return str(root / name)
    return None


def _widgets_report(versions: dict[str, str | None]) -> dict[str, Any]:
    ipywidgets = {
        "jupyterlab_widgets": _version("jupyterlab_widgets"),
        "labextension": _find_labextension(IPYWIDGETS_LABEXTENSION),
    }
    ipywidgets["ok"] = bool(
        versions["ipywidgets"] and ipywidgets["jupyterlab_widgets"] and ipywidgets["labextension"]
    )
    anywidget = {
        "version": versions["anywidget"],
        "labextension": _find_labextension(ANYWIDGET_LABEXTENSION),
    }
    anywidget["ok"] = bool(anywidget["version"] and anywidget["labextension"])

    plotly = versions["plotly"]
    if plotly is None:
        figurewidget = {"ok": False, "detail": "plotly is not installed"}
    elif _major(plotly) < 6:
        figurewidget = {
            "ok": False,
            "detail": f"plotly {plotly} is older than 6; samlab needs plotly>=6, "
            "whose FigureWidget is an anywidget",
        }
    elif not anywidget["ok"]:
        figurewidget = {
            "ok": False,
            "detail": f"plotly {plotly} draws FigureWidget with anywidget, "
            "and anywidget's front-end is missing",
        }
    else:
        figurewidget = {"ok": True, "detail": f"plotly {plotly} draws FigureWidget with anywidget"}
    return {"ipywidgets": ipywidgets, "anywidget": anywidget, "plotly_figurewidget": figurewidget}


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


def _data_report() -> dict[str, Any]:
    root = data_dir()
    folder = root / CIFAR10_FOLDER
    missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
    corrupt = [name for name in CIFAR10_FILES
               if name not in missing and not _md5_ok(folder / name)]
    jpeg = root / JPEG_NAME
    return {
        "dir": str(root),
        "dir_is_a_file": root.exists() and not root.is_dir(),
        "cifar10": {"path": str(folder), "present": not missing, "missing": missing,
                    "corrupt": corrupt, "ok": not missing and not corrupt},
        "cifar10_jpeg": {"path": str(jpeg), "present": jpeg.is_file()},
    }


def _md5_ok(path: Path) -> bool:
    """Whether ``path`` has the md5 torchvision ships for its CIFAR-10 file."""
    try:
        from torchvision.datasets.utils import check_integrity

        from samlab.data.cifar10 import cifar10_md5

        return check_integrity(str(path), cifar10_md5()[path.name])
    except Exception:  # no torchvision: the versions section says so; do not guess
        return True


def format_doctor_report(report: dict[str, Any]) -> str:
    """The report as a person reads it: one line per item, problems say what to do."""
    width = 24
    lines = ["samlab doctor", ""]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<{width}}{text}")

    lines.append("Versions")
    python = report["python"]
    row("Python", f"{python['version']}  ({python['executable']})")
    row("samlab", f"{report['samlab']['version']}  ({report['samlab']['location']})")
    for name, version in report["packages"].items():
        row(name, version or "not installed")

    lines += ["", "CUDA"]
    cuda = report["cuda"]
    if cuda["error"]:
        row("torch.cuda", f"unknown: importing torch failed: {cuda['error']}")
    else:
        row("available", "yes" if cuda["available"] else "no")
        row("torch.version.cuda", cuda["torch_cuda"] or "None (a CPU-only build of torch)")
        for i, name in enumerate(cuda["devices"]):
            row(f"cuda:{i}", name)

    lines += ["", "Widget front-ends (JupyterLab extensions)"]
    widgets = report["widgets"]
    ipywidgets = widgets["ipywidgets"]
    if ipywidgets["ok"]:
        row(
            "ipywidgets",
            f"ok  jupyterlab_widgets {ipywidgets['jupyterlab_widgets']}, "
            f"{ipywidgets['labextension']}",
        )
    else:
        row(
            "ipywidgets",
            "MISSING  install ipywidgets>=8 and jupyterlab_widgets in the "
            "environment that runs JupyterLab",
        )
    anywidget = widgets["anywidget"]
    if anywidget["ok"]:
        row("anywidget", f"ok  {anywidget['labextension']}")
    else:
        row("anywidget", "MISSING  install anywidget in the environment that runs JupyterLab")
    figurewidget = widgets["plotly_figurewidget"]
    row(
        "plotly FigureWidget",
        ("ok  " if figurewidget["ok"] else "MISSING  ") + figurewidget["detail"],
    )

    data = report["data"]
    lines += ["", f"Data  ({data['dir']}; set SAMLAB_DATA to use another directory)"]
    if data.get("dir_is_a_file"):
        row("data directory", f"NOT A DIRECTORY  {data['dir']} is a file: point SAMLAB_DATA "
                              "at the folder that holds the data")
    cifar10, jpeg = data["cifar10"], data.get("cifar10_jpeg", {})
    if cifar10["ok"]:
        row("CIFAR-10", f"ok  {cifar10['path']} (md5s checked)")
    else:
        if cifar10["present"]:
            row("CIFAR-10", f"CORRUPT  {', '.join(cifar10['corrupt'])} in {cifar10['path']} "
                            "do not have torchvision's md5: delete them and download again")
        elif len(cifar10["missing"]) == len(CIFAR10_FILES):
            row("CIFAR-10", f"not found  no {cifar10['path']}")
        else:
            row("CIFAR-10", f"incomplete  {cifar10['path']} lacks {', '.join(cifar10['missing'])}")
        row("", "torchvision downloads it (about 170 MB):")
        row(
            "",
            f'python -c "import torchvision; '
            f"torchvision.datasets.CIFAR10('{data['dir']}', download=True)\"",
        )
        if jpeg.get("present"):
            row("", "or train on the JPEG copy below: --dataset cifar10-jpeg")
    row("CIFAR-10, JPEG copy", f"ok  {jpeg['path']} (JPEG-recompressed; --dataset "
                               "cifar10-jpeg)" if jpeg.get("present") else
        f"not found  no {jpeg.get('path', JPEG_NAME)} (optional: an offline stand-in)")
    lines += ["", "Notebooks"]
    notebook_width = max(width, 2 + max(map(len, report["notebooks"]), default=0))
    cuda_ok = report["cuda"]["available"]
    cifar_ok = report["data"]["cifar10"]["ok"]
    for name, needs in report["notebooks"].items():
        wants = [w for w, need in (("CUDA", needs["cuda"]), ("CIFAR-10", needs["cifar10"]))
                 if need]
        missing = [w for w, have in (("CUDA", cuda_ok), ("CIFAR-10", cifar_ok))
                   if w in wants and not have]
        text = ("needs " + " and ".join(wants) if wants else "CPU only, no download")
        if wants and name in CPU_SIZE:
            text = f"{CPU_SIZE[name]}; its lab and paper sizes need {' and '.join(wants)}"
        lines.append(f"  {name:<{notebook_width}}{text}"
                     + (f"  (missing here: {', '.join(missing)})" if missing else ""))
    return "\n".join(lines)
