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


# ---- the package's layout: one room per concept, one-way imports ------------------------------------

def _module_imports() -> dict[str, set[str]]:
    """{module: the workbench modules it imports at module level} (`from .x import`, `from . import x`,
    `from workbench.x import`); imports inside functions (optional heavy dependencies) are not counted."""
    import ast

    package = ROOT / "workbench"
    names = {p.relative_to(package).with_suffix("").as_posix().replace("/__init__", "").replace("/", ".")
             for p in package.rglob("*.py")}
    graph = {}
    for p in package.rglob("*.py"):
        mod = p.relative_to(package).with_suffix("").as_posix().replace("/__init__", "").replace("/", ".")
        here = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.parse(p.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".") if here else []
                    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                    base = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").startswith("workbench."):
                    base = node.module[len("workbench."):]
                else:
                    continue
                deps |= {f"{base}.{a.name}".strip(".") for a in node.names} & names or ({base} & names)
        graph[mod] = deps - {mod}
    return graph


def _listed_modules() -> list[str]:
    """The modules the package docstring lists, in its order."""
    doc = (ROOT / "workbench" / "__init__.py").read_text(encoding="utf-8").split('"""')[1]
    return re.findall(r"^  (\w+)\s", doc, flags=re.M)


def test_workbench_modules_import_one_way():
    """No import cycles, and a module imports only modules listed above it in workbench/__init__.py
    (a module of the app package counts as `app`)."""
    graph = _module_imports()
    position = {m: i for i, m in enumerate(_listed_modules())}
    upward = [f"{mod} imports {dep}" for mod, deps in graph.items() for dep in deps
              if mod.split(".")[0] != dep.split(".")[0]
              and position.get(dep.split(".")[0], -1) > position.get(mod.split(".")[0], len(position))]
    assert not upward, upward
    state: dict[str, int] = {}

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [mod, dep])}"
            if dep not in state:
                visit(dep, path + [mod])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])


def test_the_package_docstring_lists_every_module():
    modules = {p.stem for p in (ROOT / "workbench").glob("*.py") if p.stem not in ("__init__", "__main__")}
    missing = sorted(modules - set(_listed_modules()))
    assert not missing, f"workbench/__init__.py does not list {missing}"


MAX_MODULE_LINES = 500  # the developers' guide: one room per concept, each module under ~500 lines


def _oversized(files: list[Path], limit: int = MAX_MODULE_LINES) -> list[str]:
    """'FILE: N lines' for each file longer than `limit` lines."""
    counts = {f: len(f.read_text(encoding="utf-8").splitlines()) for f in files}
    return [f"{f.name if not f.is_relative_to(ROOT) else f.relative_to(ROOT)}: {n} lines"
            for f, n in sorted(counts.items()) if n > limit]


def test_no_module_exceeds_the_size_limit():
    files = sorted((ROOT / "workbench").rglob("*.py"))
    assert len(files) > 30  # the walk found the package, app/ included
    assert not _oversized(files), _oversized(files)


def test_the_size_check_catches_one_line_too_many(tmp_path):
    at_limit, over = tmp_path / "ok.py", tmp_path / "big.py"
    at_limit.write_text("x = 1\n" * 500)
    over.write_text("x = 1\n" * 500 + "y = 2")  # 501 lines, the last without a newline
    assert _oversized([at_limit]) == []
    assert _oversized([at_limit, over]) == ["big.py: 501 lines"]
