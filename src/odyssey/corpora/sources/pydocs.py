"""Python documentation: the docstrings of the running interpreter's standard
library, rendered as plain text in the manner of ``pydoc``, one document per module.

Which modules, in this order: every public pure-Python module of the standard
library, in the sorted path order of :func:`odyssey.corpora.sources.pysource.source_files`
(same exclusions: tests, IDLE, turtle demos, lib2to3, ensurepip, encodings' codec
tables, pydoc_data), leaving out private modules (``_*``), ``__main__`` scripts (a
package's ``__init__.py`` documents the package), ``this``/``antigravity`` (jokes),
``tkinter``/``turtle`` (GUI), ``distutils`` (deprecated) and ``sre_*`` (deprecated
aliases).

Modules are rendered from their source with :mod:`ast` (``ast.get_docstring``;
signatures as written), never by importing them: importing has side effects, some
modules fail to import, and live objects depend on what else the process imported
(torch replaces ``inspect.getfile``, transformers adds
``logging.Logger.warning_once``). Modules written in C (``math``, ``sys``, ...) are left
out for the same reason: they can only be read live, and which of them a given build
of Python can import differs between machines (an earlier version read them, and the
world then differed between machines with the same Python version). So the text
depends only on the standard library's source files, i.e. on the Python version.

A module's text::

    json.decoder
    ============

    Implementation of JSONDecoder

    class JSONDecoder(object)
        Simple JSON <https://json.org> decoder
        ...

        decode(self, s, _w=WHITESPACE.match)
            Return the Python representation of ``s`` ...
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from odyssey.corpora.sources.base import Provenance
from odyssey.corpora.sources.pysource import source_files, stdlib_dir

SKIP_TOP = frozenset({"this", "antigravity", "tkinter", "turtle", "distutils", "readline",
                      "sre_compile", "sre_constants", "sre_parse"})
INDENT = "    "


def module_name(rel: str) -> str | None:
    """``"json/decoder.py"`` -> ``"json.decoder"``; ``None`` for modules left out."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or parts[0] in SKIP_TOP or any(p.startswith("_") for p in parts):
        return None
    return ".".join(parts)


def read(prov: Provenance) -> Iterator[dict]:
    root = stdlib_dir()
    for path in source_files(root):
        name = module_name(path.relative_to(root).as_posix())
        if name is None:
            continue
        rel, source = prov.read_text(path, root)
        try:
            text = render_source(name, source)
        except SyntaxError:  # a file written for another Python version
            continue
        if text:
            yield {"text": text, "id": f"python-docs:{name}", "meta": {"file": rel, "module": name}}


# -- pure-Python modules, from the source ------------------------------------------------
def render_source(name: str, source: str) -> str:
    """The module docstring, then its public classes and functions (``__all__`` if it
    is a literal list) with signatures as written and docstrings, in source order;
    ``""`` when the module documents nothing."""
    tree = ast.parse(source)
    public = _static_all(tree)
    blocks = [f"{name}\n{'=' * len(name)}"]
    if doc := ast.get_docstring(tree):
        blocks.append(doc.strip())
    seen = set()
    for node in tree.body:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if node.name in seen or node.name.startswith("_") or (public is not None and node.name not in public):
            continue
        seen.add(node.name)
        block = _class_block(node) if isinstance(node, ast.ClassDef) else _function_block(node, "")
        if block:
            blocks.append(block)
    return "\n\n".join(blocks) + "\n" if len(blocks) > 1 else ""


def _static_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return {v for v in value if isinstance(v, str)}
    return None


def _class_block(node: ast.ClassDef) -> str | None:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    head = f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}"
    doc = ast.get_docstring(node)
    members = []
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_") \
                and (block := _function_block(item, INDENT)):
            members.append(block)
    if not doc and not members:
        return None
    text = head + (f"\n{_indent(doc, 1)}" if doc else "")
    return text + ("\n\n" + "\n\n".join(members) if members else "")


def _function_block(node: ast.FunctionDef | ast.AsyncFunctionDef, indent: str) -> str | None:
    doc = ast.get_docstring(node)
    if not doc:
        return None
    decorators = {ast.unparse(d) for d in node.decorator_list}
    if "property" in decorators:
        head = node.name
    else:
        prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        head = f"{prefix}{node.name}({ast.unparse(node.args)}){returns}"
    level = len(indent) // len(INDENT) + 1
    return f"{indent}{head}\n{_indent(doc, level)}"


def _indent(text: str, level: int) -> str:
    pad = INDENT * level
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())
