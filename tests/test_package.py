"""The package as a user installs and imports it: the top-level names, one base for its errors,
its layers importing downward only, the model found (or a clear error) outside the checkout, and
``py.typed`` in the built wheel."""

from __future__ import annotations

import ast
import importlib
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import harmonixr
from harmonixr import cli_generation
from harmonixr.errors import HarmonixrError
from harmonixr.models.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


def test_the_common_names_come_from_the_package_itself() -> None:
    from harmonixr import Generator, Region, SamplingConfig  # the one line
    from harmonixr.generation.modes import Generator as Deep

    assert Generator is Deep and Region.__module__.endswith("piece") and SamplingConfig.__module__.endswith("sampler")
    for name in harmonixr.__all__:
        assert getattr(harmonixr, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        harmonixr.Nope  # noqa: B018


def test_every_error_of_the_package_has_the_one_base() -> None:
    """Every exception class the package defines derives from HarmonixrError (so the CLI turns
    exactly those into ``error: ...`` and a genuine bug keeps its traceback)."""
    errors = []
    package = Path(harmonixr.__file__).parent
    for path in sorted(package.rglob("*.py")):  # every module (web/ is a namespace package: walk_packages skips it)
        name = ".".join(("harmonixr", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        if name.endswith("__main__"):
            continue  # importing it runs the CLI
        module = importlib.import_module(name)
        errors += [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, BaseException) and c.__module__ == name]
    assert "StudioError" in {c.__name__ for c in errors} and len(errors) >= 12, errors  # the issue counted eleven
    assert [c.__name__ for c in errors if not issubclass(c, HarmonixrError)] == []


# The pipeline's layers, lowest first: a module imports from its own layer, a lower one, or the
# package's base modules (config, errors, progress, runtime); only the CLI sits above them all.
LAYERS = ("tokens", "data", "models", "sampling", "training", "visualization", "generation", "evaluation", "rl", "web")
BASE = ("config", "errors", "progress", "runtime")


def test_the_layers_import_downward_only() -> None:
    package = Path(harmonixr.__file__).parent
    upward = []
    for layer in LAYERS:
        for path in sorted((package / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for module in modules:
                    parts = module.split(".")
                    if parts[0] != "harmonixr" or len(parts) < 2 or parts[1] in BASE:
                        continue
                    if parts[1] not in LAYERS[: LAYERS.index(layer) + 1]:
                        upward.append(f"{path.relative_to(package)} imports {module}")
    assert not upward, upward


FIRST_IMPORTS = """
import importlib, pkgutil, sys
import harmonixr
names = sorted(m.name for m in pkgutil.walk_packages(harmonixr.__path__, "harmonixr.") if not m.name.endswith("__main__"))
failed = []
for name in names:
    for loaded in [k for k in sys.modules if k == "harmonixr" or k.startswith("harmonixr.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed.append(f"{name}: {error}")
print("\\n".join(failed))
"""


def test_every_module_imports_first_without_a_cycle() -> None:
    """Each module of the package imported before any other of it (a fresh set of its modules each
    time): an import cycle shows only when one of its modules comes first (validity.py, importing
    generation.requests first, once failed on requests -> surroundings -> drums -> requests)."""
    found = subprocess.run([sys.executable, "-c", FIRST_IMPORTS], capture_output=True, text=True, check=True)
    assert not found.stdout.strip(), found.stdout


def test_the_model_is_found_outside_the_checkout_or_named_as_missing(tmp_path, monkeypatch) -> None:
    """A wheel does not carry the model: without ``--model`` it is looked up in $HARMONIXR_MODEL,
    the current folder and the checkout, and when none has it the error says where it looked and
    what to pass."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARMONIXR_MODEL", raising=False)
    assert cli_generation.default_model() == ROOT / cli_generation.SHIPPED  # an editable install: the checkout
    elsewhere = tmp_path / "site-packages" / "harmonixr" / "cli_generation.py"
    monkeypatch.setattr(cli_generation, "__file__", str(elsewhere))  # as installed from a wheel
    with pytest.raises(CheckpointError, match=r"no model given.*looked in.*pass --model CHECKPOINT_DIR"):
        cli_generation.default_model()
    monkeypatch.setenv("HARMONIXR_MODEL", str(ROOT / cli_generation.SHIPPED))
    assert cli_generation.default_model() == ROOT / cli_generation.SHIPPED


@pytest.mark.slow
def test_the_wheel_carries_py_typed_and_no_model(tmp_path) -> None:
    """``pip install .`` builds this wheel: it has the package, its ``py.typed`` marker, and no
    model weights (the model is looked up as above)."""
    tree = tmp_path / "tree"  # a copy: the build writes its build/ folder beside the sources
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(tree)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("harmonixr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "harmonixr/py.typed" in names and "harmonixr/cli.py" in names
    assert not [n for n in names if n.endswith(".safetensors")]
