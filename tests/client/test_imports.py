"""The client's modules import each other one way only: no cycle, eager or lazy.

``cli`` and ``packets`` once imported each other (packets reached into cli for the exit
codes, from inside a function so that the cycle did not break at import time). Two checks
keep any such cycle from coming back: every import between the client's modules, also those
inside functions, read from the source, must form a graph without a cycle; and each module,
imported first and alone in a fresh interpreter, must load.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import xfrm_offload.client

PACKAGE = "xfrm_offload.client"
ROOT = Path(xfrm_offload.client.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the client package, by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


MODULES = _modules()
#: What a fresh interpreter imports: all but __main__ modules, which run the program.
IMPORTABLE = sorted(name for name in MODULES if not name.endswith(".__main__"))


def _imports(name: str, path: Path) -> set[str]:
    """The client modules that ``name`` imports, at module level or inside any function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from . import grammar" names a module; "from .grammar import parse" does not
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        out.update(t for t in targets if t in MODULES and t != name)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            if found := visit(nxt, [*path, node]):
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return None


def test_the_walk_sees_the_client_modules() -> None:
    """Guards the check itself: it reads cli, packets and the grammar's parts."""
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    cli = [name for name in graph if name.startswith(f"{PACKAGE}.cli")]
    assert any(f"{PACKAGE}.packets" in graph[name] for name in cli)
    assert f"{PACKAGE}.status" in graph[f"{PACKAGE}.packets"]
    assert f"{PACKAGE}.grammar.lexer" in graph[f"{PACKAGE}.grammar.state"]


def test_cycle_finder_finds_a_lazy_cycle() -> None:
    """The finder reports a cycle like the old cli <-> packets one."""
    graph = {"cli": {"packets"}, "packets": {"cli", "pcap"}, "pcap": set()}
    assert _cycle(graph) == ["cli", "packets", "cli"]
    assert _cycle({"cli": {"packets"}, "packets": {"pcap"}, "pcap": set()}) is None


def test_client_imports_have_no_cycle() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycle(graph) is None


@pytest.fixture(scope="module")
def fresh_imports() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """One fresh interpreter per module, all started at once, each importing only it."""
    procs = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in IMPORTABLE
    }
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("module", IMPORTABLE)
def test_module_imports_alone_in_a_fresh_interpreter(
    module: str, fresh_imports: dict[str, subprocess.Popen[str]]
) -> None:
    proc = fresh_imports[module]
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (0, "")


def test_xfrmctl_packet_loads_neither_the_grammar_nor_the_other_commands(tmp_path: Path) -> None:
    """``xfrmctl packet`` (a run that fails on an empty capture, before any connection)
    imports the packet path alone: the other commands' modules, the ip xfrm grammar and
    the renderers cost ~30 ms of every start and load on first use (cli/commands.py)."""
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    script = (
        "import sys\n"
        "from xfrm_offload.client import cli\n"
        f"argv = ['--server', 'unix:{tmp_path}/none.sock', 'packet', 'tx', '--dev', 'eth0',"
        f" '--in', '{empty}', '--out', '{tmp_path}/out.pcap']\n"
        "status = cli.main(argv)\n"
        f"print(status, sorted(m for m in sys.modules if m.startswith('{PACKAGE}.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stderr == "xfrmctl: not a pcap file: 0 bytes, a header needs 24\n"
    status, loaded = done.stdout.split(" ", 1)
    assert status == "2"
    modules = {name.removeprefix(f"{PACKAGE}.") for name in ast.literal_eval(loaded)}
    assert modules == {
        "api",
        "cli",
        "cli.options",
        "cli.packet",
        "errors",
        "packets",
        "pcap",
        "split",
        "status",
        "tls",
    }
