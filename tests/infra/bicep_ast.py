"""A small reading layer over tree-sitter-bicep for the infra tests.

The tests ask structural questions (which resources exist, what a property says, which
role a role assignment grants) of the Bicep AST rather than of regexes over the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def parse_bytes(source: bytes) -> Tree:
    return _parser().parse(source)


def parse_file(path: Path) -> Tree:
    return parse_bytes(path.read_bytes())


def bicep_files(root: Path = INFRA) -> list[Path]:
    return sorted(root.rglob("*.bicep"))


def text(node: Node | None) -> str:
    return "" if node is None else node.text.decode()


def syntax_problems(tree: Tree) -> list[str]:
    """Every ERROR or MISSING node, as 'line:col kind snippet' (1-based lines)."""
    problems: list[str] = []

    def visit(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            kind = f"MISSING {node.type}" if node.is_missing else "ERROR"
            row, col = node.start_point
            snippet = text(node).splitlines()[0][:60] if text(node) else ""
            problems.append(f"{row + 1}:{col + 1} {kind} {snippet!r}")
            if node.type == "ERROR":
                return
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    if tree.root_node.has_error and not problems:
        problems.append("1:1 ERROR (tree has an error but no node was found)")
    return problems


def string_value(node: Node | None) -> str | None:
    """The value of a plain string literal ('abc'), None for anything else."""
    if node is None or node.type != "string":
        return None
    parts = [c for c in node.children if c.type not in ("'",)]
    if any(c.type not in ("string_content", "escape_sequence") for c in parts):
        return None  # an interpolated string
    return "".join(text(c) for c in parts)


def literal(node: Node | None):
    """Python value of a string/bool/int literal, else None."""
    if node is None:
        return None
    if node.type == "string":
        return string_value(node)
    if node.type == "boolean":
        return text(node) == "true"
    if node.type == "number":
        return int(text(node))
    return None


def object_props(obj: Node | None) -> dict[str, Node]:
    """Property name -> value node of an object literal (quoted keys unquoted)."""
    props: dict[str, Node] = {}
    if obj is None or obj.type != "object":
        return props
    for prop in obj.children:
        if prop.type != "object_property":
            continue
        key, value = prop.children[0], prop.children[-1]
        name = string_value(key) if key.type == "string" else text(key)
        props[name] = value
    return props


def prop(obj: Node | None, dotted: str) -> Node | None:
    node = obj
    for part in dotted.split("."):
        node = object_props(node).get(part)
        if node is None:
            return None
    return node


@dataclass
class Resource:
    path: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: Node | None
    condition: Node | None
    loop: Node | None
    line: int

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path}:{self.line} {self.symbol}"


def _unwrap(node: Node) -> tuple[Node | None, Node | None, Node | None]:
    """(body object, condition, loop) of the value after `=` in a declaration."""
    condition = loop = None
    while node is not None and node.type in ("if_statement", "for_statement"):
        if node.type == "if_statement":
            condition = next(c for c in node.children if c.type == "parenthesized_expression")
        else:
            loop = node
        inner = [c for c in node.children if c.type in ("object", "if_statement", "for_statement")]
        node = inner[-1] if inner else None
    return node, condition, loop


def resources(tree: Tree, path: Path) -> list[Resource]:
    found: list[Resource] = []
    for decl in tree.root_node.children:
        if decl.type != "resource_declaration":
            continue
        symbol = text(next(c for c in decl.children if c.type == "identifier"))
        type_str = string_value(next(c for c in decl.children if c.type == "string")) or ""
        rtype, _, api = type_str.partition("@")
        existing = any(c.type == "existing" or text(c) == "existing" for c in decl.children)
        value = decl.children[-1]
        body, condition, loop = _unwrap(value)
        found.append(Resource(path, symbol, rtype, api, existing, body, condition, loop, decl.start_point[0] + 1))
    return found


def declarations(tree: Tree, kind: str) -> dict[str, Node]:
    """name -> declaration node for 'variable_declaration', 'parameter_declaration', 'output_declaration', 'module_declaration'."""
    out: dict[str, Node] = {}
    for decl in tree.root_node.children:
        if decl.type == kind:
            ident = next(c for c in decl.children if c.type == "identifier")
            out[text(ident)] = decl
    return out


def variable_values(tree: Tree) -> dict[str, Node]:
    return {name: decl.children[-1] for name, decl in declarations(tree, "variable_declaration").items()}


def module_params(tree: Tree, module_symbol: str) -> Node | None:
    decl = declarations(tree, "module_declaration").get(module_symbol)
    if decl is None:
        return None
    body, _, _ = _unwrap(decl.children[-1])
    return prop(body, "params")


def identifiers_in(node: Node | None) -> list[str]:
    """Root identifiers referenced in an expression (x in x.y, x[i], f(x))."""
    names: list[str] = []

    def visit(n: Node) -> None:
        if n.type == "identifier":
            names.append(text(n))
            return
        if n.type == "member_expression":
            visit(n.children[0])
            return
        for c in n.children:
            visit(c)

    if node is not None:
        visit(node)
    return names
