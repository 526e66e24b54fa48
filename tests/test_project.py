"""The project's set-up: the README's commands, CI, and the two dependency lists."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for r in requirements:
        name = re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].strip().lower().replace("_", "-")
        out[name] = r.replace(" ", "")
    return out


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    theirs = _names(pip_section)
    assert ours == theirs  # same packages, same version bounds
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.startswith("python=3.")


def test_data_packages_are_pinned_and_documented():
    lines = (ROOT / "requirements-data.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins and all("==" in p for p in pins)
    data_md = (ROOT / "assets" / "DATA.md").read_text()
    for pin in pins:
        assert pin.split("==")[0] in data_md


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")
          and not l.startswith(("set ", "cd "))]
    assert ci == ["make test"]
    assert "make test" in readme and "make app" in readme


def test_torch_is_a_range_and_the_cpu_build_is_the_makefile_default():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert "==" not in torch_req  # GPU users keep their CUDA build
    # the Makefile's default TORCH is one pinned CPU build, and the README names the same pin
    default = re.search(r"^TORCH\s*\?=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert default and re.fullmatch(r"torch==\d+\.\d+\.\d+", default.group(1)), default
    assert f"`{default.group(1)}`" in (ROOT / "README.md").read_text()


def test_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["workbench"] == "workbench.cli:main"
