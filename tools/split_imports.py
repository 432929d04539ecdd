"""Maintainer script: keep imports in cells of their own, as nbdev's docs build needs.

`nbdev_docs` / `nbdev_proc_nbs` re-execute every cell that contains an import (plus exported and show_doc cells) in a
fresh kernel, and skip the rest, whose committed outputs are shown. A cell that mixes imports with other code is run
without the cells before it and can fail with a NameError. This script moves the top-level import statements of such
cells into a new cell just above (directives copied), and, with --check, lists the cells that would still be
re-executed with other code in them.

    python tools/split_imports.py [NOTEBOOK ...]   # default: every notebook of the book
    python tools/split_imports.py --check
"""
import ast, re, sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parents[1]
_EXPORT = re.compile(r'^#\|\s*(export|exporti|exports)\b', re.M)
_DIRECTIVE = re.compile(r'^#\|.*$')


def _parse(src):
    if src.strip()[:1] in ('%', '!'): return None
    try: return ast.parse(src).body
    except SyntaxError: return None


def _has(trees, types): return any(isinstance(n, types) for t in trees for n in ast.walk(t))


def needs_split(cell) -> bool:
    if cell.cell_type != 'code' or _EXPORT.search(cell.source): return False
    trees = _parse(cell.source)
    if not trees or not _has(trees, (ast.Import, ast.ImportFrom)): return False
    # defining functions and classes is harmless when the docs build re-runs the cell; anything else may not be
    return any(not isinstance(t, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) for t in trees)


def split(cell):
    "Return (imports_cell, rest_cell) or None when there are no top-level imports to move."
    lines = cell.source.split('\n')
    trees = _parse(cell.source)
    imps = [t for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
    if not imps: return None
    imp_lines = {i for t in imps for i in range(t.lineno - 1, t.end_lineno)}
    dirs = [l for l in lines if _DIRECTIVE.match(l) and 'output' not in l and 'echo' not in l]
    a = nbformat.v4.new_code_cell('\n'.join(dirs + [lines[i] for i in sorted(imp_lines)]))
    rest = [l for i, l in enumerate(lines) if i not in imp_lines]
    cell.source = '\n'.join(rest).strip('\n')
    return a, cell


def fix(path) -> int:
    nb = nbformat.read(path, as_version=4); n = 0; out = []
    for c in nb.cells:
        if needs_split(c):
            r = split(c)
            if r: out.extend(r); n += 1; continue
        out.append(c)
    if n: nb.cells = out; nbformat.write(nb, path)
    return n


def pages(args):
    if args: return [Path(a).resolve() for a in args]
    return [p for p in sorted((root/'nbs').rglob('*.ipynb'))
            if not any(s.startswith(('_', '.')) for s in p.relative_to(root/'nbs').parts)]


if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if a != '--check']
    bad = 0
    for p in pages(args):
        if '--check' in sys.argv:
            for i, c in enumerate(nbformat.read(p, as_version=4).cells):
                if needs_split(c): bad += 1; print(f'{p.relative_to(root)} cell {i}: imports mixed with other code')
        else:
            n = fix(p)
            if n: print(f'{p.relative_to(root)}: split {n} cell(s)')
    sys.exit(1 if bad else 0)
