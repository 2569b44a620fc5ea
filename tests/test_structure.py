"""The package's shape, read from its source: layers import only downwards, no import cycles,
no file or function too long to take in at once; and, in a fresh interpreter, the product's
serve path loads none of the aligned model."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import streamre

PACKAGE = Path(streamre.__file__).parent
# Lowest first. A module may import its own part and any part of a lower layer.
LAYERS = [
    {"streamre", "triplets", "settings", "storage", "room_name"},
    {"pretrained"},
    {"audio", "graph", "textre", "whisper"},
    {"hearing", "voices"},
    {"model"},  # the aligned speech model: research, above the product's hearing
    {"inference", "corpus", "mqtt"},
    {"training", "protocol", "cluster"},
    {"config"},
    {"server"},
    {"cli"},
    {"__main__"},
]
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("streamre", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> set[str]:
    """Every streamre module this one imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "streamre" or n.startswith("streamre.")}


def part(module: str) -> str:
    """The top-level part a module belongs to: `streamre.server.app` -> `server`."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "streamre"


def layer(module: str) -> int:
    for rank, parts in enumerate(LAYERS):
        if part(module) in parts:
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS")


def test_layers_import_only_downwards():
    wrong = [f"{m} imports {i}" for m, tree in modules().items() for i in imports(tree)
             if part(i) != part(m) and layer(i) >= layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    found = modules()
    graph = {m: {i for i in imports(tree) if i in found} for m, tree in found.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(
                    path[path.index(target):] + [module, target]))
            if target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_files_and_functions_are_short():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_FILE_LINES:
            long.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}: {node.name} is {length} lines")
    assert not long, "\n".join(long)


def loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `statement`."""
    probe = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def aligned_model(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "streamre.model" or m.startswith("streamre.model.")
                  or "mcam" in m)


def test_the_serve_path_loads_none_of_the_aligned_model():
    # What `streamre serve` imports, and the speech path it builds on the default settings.
    served = loaded_by("import streamre.server.app, streamre.cli.main; "
                       "from streamre.inference.speech_path import SpeechPath, SpeechSettings; "
                       "SpeechPath(SpeechSettings())")
    assert "streamre.server.app" in served and "streamre.hearing.transcriber" in served
    assert aligned_model(served) == []


def test_the_seams_load_no_torch():
    seams = loaded_by("import streamre.inference.seam")
    assert "torch" not in seams and "streamre.inference.seam" in seams


def test_hearing_stands_on_the_whisper_floor_alone():
    wrong = [f"{m} imports {i}" for m, tree in modules().items() if part(m) == "hearing"
             for i in imports(tree) if part(i) == "model"]
    assert not wrong, "\n".join(wrong)
