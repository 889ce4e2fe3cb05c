"""Imports go one way: down the layers below, never back up (docs/architecture.md, "Layers").

Every module under src/pushgate is read with `ast` (nothing is imported), and every import of
pushgate in it is checked: at the top, inside a function (a lazy import is a dependency all the
same) and under `if TYPE_CHECKING:` (a type-only import still ties the two modules together).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module may import its own layer and any layer below it, never one above.
# Entries are module names; a package's entry covers its submodules, and the longest entry
# naming a module decides its layer (so `pushgate.store.db` is a leaf, the rest of store not).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The job model: imports nothing else of pushgate (checked on its own below).
    ("model", ("pushgate.jobs",)),
    # Small modules every layer may use. store/db.py is the DB-API connection protocol and the
    # deferred-write helpers; it imports nothing of pushgate, and the job table, retention and
    # the frequency cap write through it, so it sits here rather than with the store's
    # operations.
    (
        "leaf",
        (
            "pushgate",  # the package's __init__: its version, nothing else (matched alone)
            "pushgate.attributes",
            "pushgate.config",
            "pushgate.crypto",
            "pushgate.heap",
            "pushgate.keys",
            "pushgate.logs",
            "pushgate.names",
            "pushgate.outage",
            "pushgate.retry_after",
            "pushgate.store.db",
            "pushgate.wakeup",
        ),
    ),
    # Pure rules and types of a push request (Push, Identifier, the per-user Outcome, ApiError).
    # At run time a request goes api -> targeting -> store; but every layer that stores, counts
    # or builds from a push takes these types, and targeting imports only leaves, so it sits
    # under the chain like the job model rather than second in it.
    # With it, the shapes of every answer (pushgate.wire, msgspec Structs): the rules build the
    # push answer as one, the statistics builders, the store's reads and the handlers return
    # them, and the OpenAPI document is generated from them; wire re-exports targeting's
    # request types. Both are pure, and they import each other: one layer.
    ("targeting", ("pushgate.targeting", "pushgate.wire")),
    # The one-way flow, last stage first: stats <- providers <- (payloads) <- delivery <- queue
    # <- store/limits <- api.
    # Webhooks' pure parts (events, signatures, URL rules) sit with stats: both are told what
    # delivery decided, and the store writes their rows in the same transaction.
    ("stats", ("pushgate.stats", "pushgate.metrics", "pushgate.webhooks")),
    ("providers", ("pushgate.providers",)),
    # Payload builders: pure, for the providers (they import providers/hms.py's TTL field).
    ("payloads", ("pushgate.payloads",)),
    ("delivery", ("pushgate.delivery",)),
    ("queue", ("pushgate.queue",)),
    ("store/limits", ("pushgate.store", "pushgate.limits")),
    (
        "api",
        (
            "pushgate.api",
            "pushgate.auth",
            "pushgate.credential_check",
            "pushgate.exposition",
            "pushgate.health",
            # Sequences one targeted push; api/push.py calls it, so it is not an assembler.
            "pushgate.push_service",
            "pushgate.startup_errors",
        ),
    ),
]

# Assembly modules: they put the layers together (processes, the app, the command line, the
# emulated world, the client and its tools), may import anything, and only other assemblers
# may import them.
ASSEMBLERS: tuple[str, ...] = (
    "pushgate.api_processes",
    "pushgate.child_process",
    "pushgate.cli",
    "pushgate.client",
    "pushgate.dashboard",
    "pushgate.delivery.processes",  # one delivery child: its store, queue, senders and worker
    "pushgate.emulation",
    "pushgate.emulators",
    "pushgate.server",
    "pushgate.toolbox",
)

# Imports against the layers that are allowed anyway, each with its reason: (importer,
# imported) -> why. Empty: add to it only with a comment that says why the import cannot go.
EXCEPTIONS: dict[tuple[str, str], str] = {}

MODEL = "pushgate.jobs"
ROOT = "pushgate"


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str
    imported: str
    type_only: bool

    def __str__(self) -> str:
        where = self.path.relative_to(SRC.parent)
        kind = " (under TYPE_CHECKING)" if self.type_only else ""
        return f"{where}:{self.line}: {self.importer} imports {self.imported}{kind}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "pushgate").rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The pushgate modules `name` imports: `from pushgate.x import y` is pushgate.x.y when y
    is a module, else pushgate.x."""
    tree = ast.parse(path.read_text(), str(path))
    type_only = _type_checking_nodes(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in known else base)
        for target in targets:
            if target == "pushgate" or target.startswith("pushgate."):
                found.append(Import(path, node.lineno, name, target, id(node) in type_only))
    return found


def _longest(name: str, entries: tuple[str, ...]) -> str | None:
    matching = [e for e in entries if name == e or (e != ROOT and name.startswith(e + "."))]
    return max(matching, key=len, default=None)


def layer_of(name: str) -> int | None:
    """The index in LAYERS, or None for an assembler (or a module nobody placed)."""
    best: tuple[int, int] | None = None  # (entry length, layer index)
    for index, (_, entries) in enumerate(LAYERS):
        entry = _longest(name, entries)
        if entry is not None and (best is None or len(entry) > best[0]):
            best = (len(entry), index)
    assembler = _longest(name, ASSEMBLERS)
    if assembler is not None and (best is None or len(assembler) > best[0]):
        return None
    return None if best is None else best[1]


def is_assembler(name: str) -> bool:
    return layer_of(name) is None and _longest(name, ASSEMBLERS) is not None


def all_imports() -> list[Import]:
    known = modules()
    return [i for name, path in known.items() for i in imports_of(name, path, set(known))]


def test_every_module_has_a_layer_or_is_an_assembler() -> None:
    unplaced = [name for name in modules() if layer_of(name) is None and not is_assembler(name)]
    assert not unplaced, (
        "modules in no layer of tests/unit/test_import_graph.py (add each to LAYERS or, if it"
        f" puts layers together, to ASSEMBLERS): {unplaced}"
    )


def test_the_job_model_imports_nothing_else_of_pushgate() -> None:
    found = [str(i) for i in all_imports() if i.importer == MODEL and i.imported != MODEL]
    assert not found, "the job model must stay the bottom layer:\n" + "\n".join(found)


def test_no_import_goes_back_up_the_layers() -> None:
    wrong: list[str] = []
    for i in all_imports():
        if (i.importer, i.imported) in EXCEPTIONS:
            continue
        importer, imported = layer_of(i.importer), layer_of(i.imported)
        if importer is None:  # an assembler may import anything
            continue
        if imported is None:
            wrong.append(f"{i}: an assembly module (only assemblers may import those)")
        elif imported > importer:
            wrong.append(
                f"{i}: layer {LAYERS[importer][0]!r} may not import layer"
                f" {LAYERS[imported][0]!r}, which is above it"
            )
    assert not wrong, (
        "imports against the layers (tests/unit/test_import_graph.py, LAYERS): move the shared"
        " type down, or pass a function or protocol in instead:\n" + "\n".join(wrong)
    )


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: an import back up, a relative one and a type-only one are found."""
    package = tmp_path / "pushgate" / "jobs.py"
    package.parent.mkdir()
    package.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .queue import table\n"
        "if TYPE_CHECKING:\n"
        "    from pushgate.delivery.outcome import decide\n"
    )
    known = {"pushgate.jobs", "pushgate.queue", "pushgate.queue.table", "pushgate.delivery.outcome"}
    found = imports_of("pushgate.jobs", package, known)
    assert [(i.imported, i.type_only) for i in found] == [
        ("pushgate.queue.table", False),
        ("pushgate.delivery.outcome", True),
    ]
    assert layer_of("pushgate.queue.jetstream") == layer_of("pushgate.queue.table")
    assert layer_of("pushgate") == 1 and layer_of("pushgate.queue") != 1  # the root alone
    assert layer_of("pushgate.store.db") == 1  # the longest entry wins: a leaf
    assert is_assembler("pushgate.delivery.processes")
    assert not is_assembler("pushgate.delivery.worker")
