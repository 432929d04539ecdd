"""Maintainer script: write nbs/sidebar.yml, the book's reading order (Foundations, Models, Experiments, API).

nbdev 2.4's automatic sidebar strips the number prefix from folder names (`00_foundations` -> `foundations`) in the
paths it writes, so its links point at folders that do not exist; `settings.ini` therefore sets
`custom_sidebar = True` and this script writes the sidebar from the notebooks on disk.

    python tools/sidebar.py          # rewrite nbs/sidebar.yml
    python tools/sidebar.py --check  # exit 1 if nbs/sidebar.yml is out of date
"""
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nbs = root/'nbs'
SECTIONS = {'00_foundations': 'Foundations', '10_models': 'Models', '20_experiments': 'Experiments'}

def _nbs(folder): return sorted(p for p in (nbs/folder).glob('*.ipynb') if not p.name.startswith(('_', '.')))

def sidebar() -> str:
    lines = ['website:', '  sidebar:', '    contents:', '      - index.ipynb']
    for folder, title in SECTIONS.items():
        lines += [f'      - section: {title}', '        contents:']
        lines += [f'          - {p.relative_to(nbs).as_posix()}' for p in _nbs(folder)]
    top = [p for p in sorted(nbs.glob('*.ipynb')) if p.name != 'index.ipynb' and not p.name.startswith(('_', '.'))]
    lines += ['      - section: API', '        contents:'] + [f'          - {p.name}' for p in top]
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    path, text = nbs/'sidebar.yml', sidebar()
    if '--check' in sys.argv:
        ok = path.exists() and path.read_text() == text
        if not ok: print('nbs/sidebar.yml is out of date: run python tools/sidebar.py')
        sys.exit(0 if ok else 1)
    path.write_text(text); print('wrote nbs/sidebar.yml')
