"""Maintainer script: give every notebook of the book an "Open in Colab" badge under its description and a first
code cell that installs hybrid_gen when the notebook runs on Colab (and does nothing elsewhere). Idempotent.

    python tools/colab.py            # update the notebooks in place
    python tools/colab.py --check    # exit 1 if a notebook lacks either
"""
import configparser, sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parents[1]
cfg = configparser.ConfigParser(); cfg.read(root/'settings.ini'); cfg = cfg['DEFAULT']
repo = cfg['git_url'].removeprefix('https://github.com/')
MARK = 'colab.research.google.com/assets/colab-badge.svg'
INSTALL = ("#| hide\n# On Colab, install the library this notebook belongs to; elsewhere this does nothing.\n"
           "if 'google.colab' in str(get_ipython()): get_ipython().run_line_magic('pip', 'install -q "
           f"git+{cfg['git_url']}.git')")

def badge(rel): return (f"[![Open In Colab](https://{MARK})](https://colab.research.google.com/github/{repo}/blob/"
                        f"{cfg['branch']}/nbs/{rel.as_posix()})")

def fix(path, check=False):
    nb = nbformat.read(path, as_version=4); changed = False
    rel = path.relative_to(root/'nbs')
    if rel.name != 'index.ipynb' and not any(MARK in c.source for c in nb.cells[:3] if c.cell_type == 'markdown'):
        c0 = nb.cells[0]
        assert c0.cell_type == 'markdown' and c0.source.lstrip().startswith('# '), f'{rel}: first cell must be the title'
        c0.source = c0.source.rstrip('\n') + '\n\n' + badge(rel); changed = True
    codes = [c for c in nb.cells if c.cell_type == 'code']
    old = [c for c in codes[:2] if 'google.colab' in c.source]
    if old and old[0].source != INSTALL: old[0].source = INSTALL; changed = True
    if not old:
        i = nb.cells.index(codes[0]) + (1 if codes[0].source.lstrip().startswith('#| default_exp') else 0)
        nb.cells.insert(i, nbformat.v4.new_code_cell(INSTALL)); changed = True
    if changed and not check: nbformat.write(nb, path)
    return changed

if __name__ == '__main__':
    check = '--check' in sys.argv
    bad = [p for p in sorted((root/'nbs').rglob('*.ipynb'))
           if not any(part.startswith(('_', '.')) for part in p.relative_to(root/'nbs').parts) and fix(p, check)]
    for p in bad: print(('missing badge/install cell: ' if check else 'updated: ') + str(p.relative_to(root)))
    sys.exit(1 if check and bad else 0)
