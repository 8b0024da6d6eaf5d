"""The three install routes agree, and the `samlab` command works.

pyproject.toml (pip), environment.yml (conda) and binder/requirements.txt (mybinder.org)
each list samlab's runtime dependencies; they must name the same packages with the
same lower bounds, or one route silently installs something the others don't.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # PyYAML: a dependency of jupytext, so always present with samlab
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import samlab
from samlab.doctor import CIFAR10_FILES, CIFAR10_FOLDER, NOTEBOOK_NEEDS, PACKAGES
from samlab.paths import data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent

# conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {"pytorch": "torch"}
# Entries of environment.yml that are the environment itself, not samlab's dependencies.
CONDA_ENVIRONMENT_ONLY = {"python", "pip"}


def lower_bounds(specs: list[str], aliases: dict[str, str] | None = None) -> dict[str, Version]:
    """``{"numpy>=1.24", ...}`` → ``{"numpy": Version("1.24"), ...}``, names normalized."""
    aliases = aliases or {}
    bounds = {}
    for spec in specs:
        requirement = Requirement(spec)
        name = canonicalize_name(aliases.get(requirement.name.lower(), requirement.name))
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{spec!r} should have exactly one lower bound (>=)"
        bounds[name] = lower[0]
    return bounds


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def pyproject_specs() -> list[str]:
    """What the conda and Binder environments must hold: the library and its `lab` extra."""
    project = pyproject()["project"]
    return project["dependencies"] + project["optional-dependencies"]["lab"]


def test_the_library_alone_needs_no_jupyterlab_and_the_lab_extra_adds_it():
    project = pyproject()["project"]
    library = lower_bounds(project["dependencies"])
    assert "jupyterlab" not in library and "jupytext" not in library
    assert {"jupyterlab", "jupytext"} <= set(lower_bounds(project["optional-dependencies"]["lab"]))
    assert "samlab[lab,course]" in project["optional-dependencies"]["test"]


def test_nbgrader_is_the_course_extra_and_make_test_installs_it():
    """`make test` installs the test extra, which holds the course extra: the nbgrader
    pipeline test runs in every `make test`; the library and `make exercises` need none."""
    extras = pyproject()["project"]["optional-dependencies"]
    assert set(lower_bounds(extras["course"])) == {"nbgrader"}
    assert "nbgrader" not in lower_bounds(pyproject()["project"]["dependencies"] + extras["lab"])
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install -e '.[test]'" in makefile


def conda_specs() -> list[str]:
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    return [entry for entry in environment["dependencies"] if isinstance(entry, str)]


def binder_specs() -> list[str]:
    lines = (REPO_ROOT / "binder" / "requirements.txt").read_text().splitlines()
    lines = [line.split("#", 1)[0].strip() for line in lines]
    return [line for line in lines if line and not line.startswith("-")]


def test_environment_yml_lists_the_same_packages_and_lower_bounds_as_pyproject():
    conda = [s for s in conda_specs() if Requirement(s).name not in CONDA_ENVIRONMENT_ONLY]
    assert lower_bounds(conda, CONDA_TO_PYPI) == lower_bounds(pyproject_specs())


def test_binder_requirements_list_the_same_packages_and_lower_bounds_as_pyproject():
    assert lower_bounds(binder_specs()) == lower_bounds(pyproject_specs())


def test_environment_yml_asks_for_the_python_that_pyproject_requires():
    python = [s for s in conda_specs() if Requirement(s).name == "python"]
    assert python, "environment.yml should pin a lower bound on python"
    assert str(Requirement(python[0]).specifier) == pyproject()["project"]["requires-python"]


def test_no_dependency_is_pinned_to_an_exact_version():
    extras = pyproject()["project"]["optional-dependencies"].values()
    specs = pyproject_specs() + conda_specs() + binder_specs() + \
        [s for e in extras for s in e if not s.startswith("samlab[")]
    pinned = [s for s in specs if {c.operator for c in Requirement(s).specifier} - {">=", "!="}]
    assert not pinned, f"use lower bounds only, not pins or upper bounds: {pinned}"


def test_binder_installs_cpu_only_torch_and_samlab_without_touching_dependencies():
    requirements = (REPO_ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    post_build = REPO_ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert "pip install --no-deps -e ." in post_build.read_text()


@pytest.mark.slow
def test_the_wheel_carries_the_playgrounds_front_end(tmp_path):
    """An editable install reads js/ from the checkout; a wheel must carry it. Built from a
    clean copy: a samlab.egg-info left in the checkout would list the files for it."""
    import shutil
    import zipfile

    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "build", "dist", "notebooks", "tests", "benchmarks"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True,
                   capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("samlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("engine.js", "view.js"):
        assert f"samlab/widgets/js/{name}" in names


# --- the samlab command --------------------------------------------------------------


def samlab_command(*args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data is not None:
        env["SAMLAB_DATA"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "samlab", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version_prints_samlab_dunder_version():
    result = samlab_command("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"samlab {samlab.__version__}"


def test_console_script_points_at_cli_main():
    assert pyproject()["project"]["scripts"] == {"samlab": "samlab.cli:main"}


def test_doctor_reports_versions_cuda_widgets_and_data(tmp_path):
    result = samlab_command("doctor", data=tmp_path)
    assert result.returncode == 0, result.stderr
    report = result.stdout
    for item in ("Python", "samlab", *PACKAGES, "CUDA", "torch.", "plotly FigureWidget"):
        assert item in report, f"doctor report does not mention {item!r}:\n{report}"
    assert str(tmp_path) in report
    assert "CIFAR-10" in report and "not found" in report


def test_doctor_knows_what_every_notebook_needs():
    notebooks = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sorted(NOTEBOOK_NEEDS) == notebooks
    report = samlab_command("doctor").stdout
    for name in notebooks:
        assert name in report
    assert "01_sam_on_a_saddle" in report and "CPU only, no download" in report


def test_doctor_json_finds_cifar10_in_samlab_data(tmp_path):
    folder = tmp_path / CIFAR10_FOLDER
    folder.mkdir()
    for name in CIFAR10_FILES:
        (folder / name).write_bytes(b"")

    result = samlab_command("doctor", "--json", data=tmp_path)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samlab"]["version"] == samlab.__version__
    assert set(report["packages"]) == set(PACKAGES)
    assert isinstance(report["cuda"]["available"], bool)
    assert set(report["widgets"]) == {"ipywidgets", "anywidget", "plotly_figurewidget"}
    assert report["data"]["dir"] == str(tmp_path)
    # Present, but empty files are not CIFAR-10: doctor checks the md5s, not only the names.
    assert report["data"]["cifar10"] == {"path": str(folder), "present": True, "missing": [],
                                         "corrupt": list(CIFAR10_FILES), "ok": False}
    assert report["data"]["cifar10_jpeg"]["present"] is False
    assert report["data"]["dir_is_a_file"] is False


def test_data_dir_is_repo_data_unless_samlab_data_is_set(monkeypatch, tmp_path):
    monkeypatch.delenv("SAMLAB_DATA", raising=False)
    assert data_dir() == Path(samlab.__file__).resolve().parent.parent / "data"
    monkeypatch.setenv("SAMLAB_DATA", str(tmp_path))
    assert data_dir() == tmp_path


@pytest.mark.parametrize("argv", [[], ["doctor", "--no-such-flag"]])
def test_cli_usage_errors_exit_with_status_2(argv):
    assert samlab_command(*argv).returncode == 2


def test_doctor_points_at_the_jpeg_copy_it_sees_and_05s_cpu_size(tmp_path):
    (tmp_path / "cifar10-jpeg.npz").write_bytes(b"")
    report = samlab_command("doctor", data=tmp_path).stdout
    assert f"CIFAR-10, JPEG copy     ok  {tmp_path / 'cifar10-jpeg.npz'}" in report
    assert "or train on the JPEG copy below: --dataset cifar10-jpeg" in report
    row = next(line for line in report.splitlines() if "05_resnet20_cifar10_live" in line)
    assert "05_resnet20_cifar10_live  quick size on a CPU, no download; its lab and paper " \
           "sizes need CUDA and CIFAR-10" in row  # the name and its text apart
    assert json.loads(samlab_command("doctor", "--json", data=tmp_path).stdout)["data"][
        "cifar10_jpeg"] == {"path": str(tmp_path / "cifar10-jpeg.npz"), "present": True}


def test_doctor_says_when_samlab_data_is_a_file(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    report = samlab_command("doctor", data=tmp_path / "data").stdout
    assert f"NOT A DIRECTORY  {tmp_path / 'data'} is a file" in report
