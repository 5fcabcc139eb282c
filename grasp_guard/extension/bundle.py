"""ES modules joined into one classic script, for the extension's content scripts.

Content scripts (the isolated and the page's main world) cannot be ES modules, and the
main-world one must run synchronously at ``document_start``, before any page script takes
a reference to ``fetch``. So each content script entry is bundled with the modules it
imports, each module a function scope run once in dependency order, inside one IIFE that
leaves no global behind. The subset handled is the one ``sdk/js`` and ``browser/`` use —
named and namespace imports, ``export`` declarations, ``export {…} from`` and
``export * as … from`` — and anything else at the start of a line (default exports,
``export *``, ``export {…}`` of locals) and import cycles are refused with the file and
line, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from grasp_guard.errors import ConfigError

_FROM = r'\s*from\s*"(?P<path>\.{1,2}/[^"]+)"\s*;?'
IMPORT_NAMED = re.compile(r"^import\s*\{(?P<names>[^}]*)\}" + _FROM, re.MULTILINE)
IMPORT_NAMESPACE = re.compile(r"^import\s*\*\s*as\s+(?P<name>[\w$]+)" + _FROM, re.MULTILINE)
EXPORT_FROM = re.compile(r"^export\s*\{(?P<names>[^}]*)\}" + _FROM, re.MULTILINE)
EXPORT_NAMESPACE_FROM = re.compile(r"^export\s*\*\s*as\s+(?P<name>[\w$]+)" + _FROM, re.MULTILINE)
EXPORT_DECLARATION = re.compile(
    r"^export\s+(?P<kind>(?:async\s+)?function\s*\*?|class|const|let|var)\s+(?P<name>[\w$]+)",
    re.MULTILINE)
# What is left once the above are rewritten; import() in JSDoc types is a comment, not code.
LEFT_OVER = re.compile(r"^\s*(import|export)\b.*$", re.MULTILINE)


@dataclass
class _Module:
    path: Path
    code: str
    imports: list[tuple[str, Path]]  # (the const statement's left side, the module)
    exports: list[tuple[str, str]]   # (exported name, expression)


def _names(text: str) -> list[tuple[str, str]]:
    """``a, b as c`` as ``[("a", "a"), ("b", "c")]`` (local or imported name, bound name)."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            original, _, alias = item.partition(" as ")
            pairs.append((original.strip(), (alias or original).strip()))
    return pairs


def _parse(path: Path) -> _Module:
    code = path.read_text(encoding="utf-8")
    imports: list[tuple[str, Path]] = []
    exports: list[tuple[str, str]] = []

    def target(match: re.Match[str]) -> Path:
        return (path.parent / match["path"]).resolve()

    def named_import(match: re.Match[str]) -> str:
        names = ", ".join(a if a == b else f"{a}: {b}" for a, b in _names(match["names"]))
        imports.append((f"{{ {names} }}", target(match)))
        return ""

    def namespace_import(match: re.Match[str]) -> str:
        imports.append((match["name"], target(match)))
        return ""

    def export_from(match: re.Match[str]) -> str:
        alias = f"__reexport{len(imports)}"
        imports.append((alias, target(match)))
        exports.extend((b, f"{alias}.{a}") for a, b in _names(match["names"]))
        return ""

    def export_namespace(match: re.Match[str]) -> str:
        imports.append((match["name"], target(match)))
        exports.append((match["name"], match["name"]))
        return ""

    def declaration(match: re.Match[str]) -> str:
        exports.append((match["name"], match["name"]))
        return f"{match['kind']} {match['name']}"

    for pattern, replace in ((IMPORT_NAMED, named_import), (IMPORT_NAMESPACE, namespace_import),
                             (EXPORT_FROM, export_from), (EXPORT_NAMESPACE_FROM, export_namespace),
                             (EXPORT_DECLARATION, declaration)):
        code = pattern.sub(replace, code)
    left = LEFT_OVER.search(code)
    if left:
        line = code[:left.start()].count("\n") + 1
        raise ConfigError(f"{path}:{line}: cannot bundle {left.group(0).strip()!r} (only named "
                          "and namespace imports and exported declarations are supported)")
    return _Module(path, code, imports, exports)


def _order(entry: Path) -> list[_Module]:
    """Every module ``entry`` reaches, each after the modules it imports."""
    done: dict[Path, _Module] = {}
    visiting: list[Path] = []

    def visit(path: Path) -> None:
        if path in done:
            return
        if path in visiting:
            cycle = " -> ".join(p.name for p in [*visiting[visiting.index(path):], path])
            raise ConfigError(f"cannot bundle an import cycle: {cycle}")
        if not path.is_file():
            importer = visiting[-1] if visiting else "the entry"
            raise ConfigError(f"{importer}: imports {path}, which does not exist")
        visiting.append(path)
        module = _parse(path)
        for _, dependency in module.imports:
            visit(dependency)
        visiting.pop()
        done[path] = module

    visit(entry.resolve())
    return list(done.values())


def bundle(entry: Path) -> str:
    """One classic script that runs ``entry`` (an ES module) and what it imports, once each,
    in import order, leaving no global behind.

    Raises:
        ConfigError: a module uses syntax outside the supported subset, or modules import
            each other in a cycle.
    """
    modules = _order(entry)
    variable = {m.path: f"__module{i}" for i, m in enumerate(modules)}
    root = entry.resolve().parent
    parts = [(f"// Bundled from {entry.name} by `grasp-guard extension build`; do not edit.\n"
              "(() => {\n\"use strict\";\n")]
    for module in modules:
        bindings = "".join(f"const {left} = {variable[path]};\n" for left, path in module.imports)
        exported = ", ".join(name if name == expression else f"{name}: {expression}"
                             for name, expression in module.exports)
        name = module.path.relative_to(root) if module.path.is_relative_to(root) else module.path
        parts.append(f"// ---- {name}\nconst {variable[module.path]} = (() => {{\n{bindings}"
                     f"{module.code}\nreturn Object.freeze({{ {exported} }});\n}})();\n")
    parts.append("})();\n")
    return "".join(parts)
