#!/usr/bin/env python3
"""Fails if modules import each other in a cycle under host/src/plugin or
host/src/pipeline: each module (file or folder) there may use its siblings,
but never through a loop. A folder counts as one module; its files may use
their parent's items."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host", "src")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+ \{.*", re.S)


def modules(package):
    folder = os.path.join(ROOT, package)
    found = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry == "mod.rs":
            continue
        if entry.endswith(".rs"):
            found[entry[:-3]] = [path]
        elif os.path.isdir(path):
            found[entry] = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
    return found


def uses(package, mods):
    edges = {m: set() for m in mods}
    base = os.path.join(ROOT, package)
    for module, files in mods.items():
        for f in files:
            source = TESTS.sub("", open(f).read())
            source = re.sub(r"^\s*//.*$", "", source, flags=re.M)
            depth = os.path.relpath(f, base).count("/") - (1 if f.endswith("/mod.rs") else 0)
            up = re.escape("super::" * (depth + 1))
            patterns = [
                r"crate::%s::(\w+)" % package,
                r"crate::%s::\{([^}]*)\}" % package,
                up + r"(\w+)",
                up + r"\{([^}]*)\}",
            ]
            for pattern in patterns:
                for match in re.findall(pattern, source):
                    for name in re.split(r"[,\s]+", match):
                        name = name.split("::")[0]
                        if name in mods and name != module:
                            edges[module].add(name)
    return edges


def cycle_from(start, edges):
    stack = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in edges[node]:
            if nxt == start:
                return path + [start]
            if nxt not in path:
                stack.append((nxt, path + [nxt]))
    return None


failed = False
for package in ("plugin", "pipeline"):
    edges = uses(package, modules(package))
    for module in sorted(edges):
        loop = cycle_from(module, edges)
        if loop:
            print(f"host/src/{package}: import cycle {' -> '.join(loop)}", file=sys.stderr)
            failed = True
            break
sys.exit(1 if failed else 0)
