#!/usr/bin/env python3
"""The library's module graph, and a check that it has no cycle: no module may use a module
that uses it (directly or through others). A module uses another when its code names a path
into it (`use crate::onnx::graph::Graph`, `super::ops::Backward`, `crate::budget::check_shape`
in an expression, a parent's `pub use graph::Env` or `activation::build`); a parent declaring
its children (`mod graph;`) is ownership, not use. Test code (`#[cfg(test)]` modules and files) is left
out. The same rule `cargo modules dependencies --acyclic` applies, in a few milliseconds and
with nothing to install.

    scripts/module-graph.py            # exit 1 and the cycles when there is one
    scripts/module-graph.py --edges    # also print every edge
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_files():
    """Module path (tuple) -> file, for the library crate (src/lib.rs and what it declares)."""
    files = {(): os.path.join(ROOT, "lib.rs")}
    todo = [()]
    while todo:
        path = todo.pop()
        src = strip_tests(open(files[path]).read())
        base = os.path.dirname(files[path])
        if not files[path].endswith(("lib.rs", "mod.rs")):
            base = os.path.join(base, os.path.basename(files[path])[:-3])
        for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", src, re.M):
            name = m.group(1)
            for candidate in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(candidate):
                    files[path + (name,)] = candidate
                    todo.append(path + (name,))
                    break
    return files


def strip_tests(src):
    """The source without comments and `#[cfg(test)]` items."""
    src = re.sub(r"//[^\n]*", "", src)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        j = m.end()
        # The item: up to its `;` or its matching closing brace.
        brace = src.find("{", j)
        semi = src.find(";", j)
        if semi != -1 and (brace == -1 or semi < brace):
            i = semi + 1
            continue
        depth, k = 0, brace
        while k < len(src):
            depth += {"{": 1, "}": -1}.get(src[k], 0)
            if depth == 0:
                break
            k += 1
        i = k + 1
    out.append(src[i:])
    return "".join(out)


def paths_in(src):
    """Every path the code names: `use` trees expanded, and `crate::`/`super::` paths."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        found.extend(expand(m.group(1).replace("\n", " ").replace(" ", "")))
    body = re.sub(r"\buse\s+[^;]+;", "", src)
    found.extend(p.split("::") for p in re.findall(r"(?<![\w:])\w+(?:::\w+)+", body))
    return found


def expand(tree, prefix=()):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    i = tree.find("{")
    if i == -1:
        return [list(prefix) + [s for s in tree.split("::") if s]]
    head = [s for s in tree[:i].split("::") if s]
    inner = tree[i + 1: tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for k, c in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(inner[start:k])
            start = k + 1
    parts.append(inner[start:])
    out = []
    for p in filter(None, parts):
        out.extend(expand(p, tuple(prefix) + tuple(head)))
    return out


def target(module, path, modules):
    """The module a path from `module` lands in (its longest module prefix), or None outside
    the crate."""
    if not path:
        return None
    if path[0] == "crate":
        here, rest = (), path[1:]
    elif path[0] in ("super", "self"):
        here, rest = module, path
        while rest and rest[0] in ("super", "self"):
            here = here[:-1] if rest[0] == "super" else here
            rest = rest[1:]
    elif module + (path[0],) in modules:
        # A relative path into a child module (`activation::build`, `pub use graph::Env`).
        here, rest = module, path
    else:
        return None
    for name in rest:
        if here + (name,) in modules:
            here = here + (name,)
        else:
            break
    return here


def main():
    files = module_files()
    modules = set(files)
    edges = {}
    for module, path in files.items():
        src = strip_tests(open(path).read())
        for p in paths_in(src):
            t = target(module, p, modules)
            if t is None or t == module:
                continue
            edges.setdefault(module, set()).add(t)
    name = lambda m: "crate" + "".join("::" + s for s in m)
    if "--edges" in sys.argv:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{name(m)} -> {name(t)}")
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    cycles = [c for c in comps if len(c) > 1]
    n_edges = sum(len(t) for t in edges.values())
    if cycles:
        for c in cycles:
            print("cycle: " + ", ".join(sorted(name(m) for m in c)), file=sys.stderr)
            for m in sorted(c):
                for t in sorted(edges.get(m, ())):
                    if t in c:
                        print(f"  {name(m)} -> {name(t)}", file=sys.stderr)
        sys.exit(1)
    print(f"module graph: {len(modules)} modules, {n_edges} uses, no cycle")


main()
