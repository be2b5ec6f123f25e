"""Python documentation: the docstrings of the running interpreter's standard
library, rendered as plain text in the manner of ``pydoc``, one document per module.

Which modules, in this order (deterministic for a given interpreter):

1. every public pure-Python module of the standard library, in the sorted path
   order of :func:`odyssey.corpora.sources.pysource.source_files` (same exclusions:
   tests, IDLE, turtle demos, lib2to3, ensurepip, encodings' codec tables,
   pydoc_data), leaving out private modules (``_*``), ``__main__``/``__init__``
   scripts aside (a package's ``__init__.py`` documents the package), and
   ``this``/``antigravity`` (jokes), ``tkinter``/``turtle`` (GUI), ``distutils``
   (deprecated; setuptools replaces it), ``sre_*`` (deprecated aliases);
2. then the public modules written in C (``builtins``, ``math``, ``sys``, ...),
   sorted by name, except ``readline`` (importing it touches the terminal).

Pure-Python modules are rendered from their source with :mod:`ast`
(``ast.get_docstring``; signatures as written), not by importing them: importing
~300 modules has side effects, some fail, and the live objects depend on what else
the process imported (torch replaces ``inspect.getfile``, transformers adds
``logging.Logger.warning_once``), so the same interpreter would give different
text in different processes. C modules can only be read live; they are imported
(quietly) and only objects they define themselves are rendered, with default values
kept only when they are short literals, so no machine state (``os.environ``,
paths, object addresses) gets into the text. Nothing is run in a subprocess.
(One case stays process-dependent: a library that *replaces* a C module's function,
as gevent's monkey-patching does with ``time.sleep``, removes it from the text.)

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
import contextlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

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


def c_module_names() -> list[str]:
    """Public standard-library modules written in C, sorted (found without importing)."""
    names = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_TOP:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and (spec.origin == "built-in"
                                 or isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)):
            names.append(name)
    return names


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
    for name in c_module_names():
        module = _import(name)
        text = render_module(module) if module is not None else ""
        if text:
            rel = _record_file(prov, module, root)
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


# -- C modules, live ---------------------------------------------------------------------
def _import(name: str) -> ModuleType | None:
    """Import quietly; ``None`` when the module cannot be imported here."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except (Exception, SystemExit):
        return None


def _record_file(prov: Provenance, module: ModuleType, root: Path) -> str | None:
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_relative_to(root):
        return None  # built into the interpreter
    return prov.add_file(Path(path), root)


def render_module(module: ModuleType) -> str:
    """Like :func:`render_source`, from the live objects of a C module, in
    definition order; ``""`` when it documents nothing."""
    name = module.__name__
    blocks = [f"{name}\n{'=' * len(name)}"]
    if doc := _doc(module):
        blocks.append(doc)
    seen: set[int] = set()
    for attr, obj in list(vars(module).items()):
        if attr.startswith("_") or id(obj) in seen or _owner(obj) != name:
            continue  # private, an alias, or not this module's own (a library's patch)
        seen.add(id(obj))
        if inspect.isclass(obj):
            block = _live_class(attr, obj)
        elif inspect.isroutine(obj):
            block = _live_routine(attr, obj, "")
        else:
            continue
        if block:
            blocks.append(block)
    return "\n\n".join(blocks) + "\n" if len(blocks) > 1 else ""


def _owner(obj: object) -> str | None:
    try:
        owner = getattr(obj, "__module__", None)
    except Exception:
        return None
    return owner if isinstance(owner, str) else None


def _live_class(name: str, cls: type) -> str | None:
    members = []
    for attr, member in list(vars(cls).items()):
        if attr.startswith("_") or isinstance(member, (classmethod, staticmethod, property)):
            continue
        # C methods (method descriptors) carry no module; Python functions here were patched in.
        if inspect.isroutine(member) and not inspect.isfunction(member) \
                and (block := _live_routine(attr, member, INDENT)):
            members.append(block)
    doc = _doc(cls)
    if not doc and not members:
        return None
    text = f"class {name}" + (f"\n{_indent(doc, 1)}" if doc else "")
    return text + ("\n\n" + "\n\n".join(members) if members else "")


def _live_routine(name: str, fn: object, indent: str) -> str | None:
    doc = _doc(fn)
    if not doc:
        return None
    level = len(indent) // len(INDENT) + 1
    return f"{indent}{name}{_signature(fn)}\n{_indent(doc, level)}"


_LITERALS = (type(None), bool, int, float, complex, str, bytes)


class _Opaque:
    def __repr__(self) -> str:
        return "<...>"


def _signature(obj: object) -> str:
    """The signature, with default values other than short literals as ``<...>``."""
    try:
        sig = inspect.signature(obj)
        params = [p if p.default is p.empty or (isinstance(p.default, _LITERALS) and len(repr(p.default)) <= 60
                                                 and not (isinstance(p.default, str) and os.path.isabs(p.default)))
                  else p.replace(default=_Opaque()) for p in sig.parameters.values()]
        return str(sig.replace(parameters=params))
    except Exception:  # no signature, or one that fails to evaluate
        return "(...)"


def _doc(obj: object) -> str:
    try:
        doc = obj.__doc__
    except Exception:
        return ""
    return inspect.cleandoc(doc).strip() if isinstance(doc, str) else ""


def _indent(text: str, level: int) -> str:
    pad = INDENT * level
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())
