#!/usr/bin/env python3
"""Lists the crate's top-level modules each one uses (`crate::x` outside comments and test
modules) with `-v`, and fails, printing them, when any two depend on each other, directly or through others."""
import os, re, sys

root = os.path.join(os.path.dirname(__file__), "..", "src")
deps = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        if rel.startswith("bin") or rel == "lib.rs":
            continue
        top = rel.split(os.sep)[0].removesuffix(".rs")
        text = open(os.path.join(dirpath, f)).read()
        text = text.split("#[cfg(test)]")[0]  # tests may reach anywhere
        text = re.sub(r"//.*", "", text)
        uses = set(re.findall(r"\bcrate::(\w+)", text)) - {top}
        deps.setdefault(top, set()).update(uses)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in deps.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop(); on.discard(w); scc.append(w)
            if w == v:
                break
        sccs.append(scc)
for v in sorted(deps):
    if v not in index:
        visit(v)
cycles = [sorted(s) for s in sccs if len(s) > 1]
if cycles or "-v" in sys.argv:
    for k in sorted(deps):
        print(f"{k:12} -> {', '.join(sorted(deps[k]))}")
for c in cycles:
    print("cycle:", " <-> ".join(c))
sys.exit(1 if cycles else 0)
