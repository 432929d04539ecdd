"""Maintainer script: give every notebook of the book an "Open in Colab" badge under its description and a first
code cell that installs hybrid_gen when the notebook runs on Colab (and does nothing elsewhere). Idempotent.

The install cell pins the release the page is built with (`version` in settings.ini): `pip install hybrid_gen==X.Y.Z`,
or, if that fails (the release is not on PyPI yet, or PyPI is unreachable), the git tag `vX.Y.Z`. Run it after every
version bump (`nbdev_bump_version`), before tagging the release.

    python tools/colab.py            # update the notebooks in place
    python tools/colab.py --check    # exit 1 if a notebook lacks either, or its install cell names another version
"""
import configparser, sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parents[1]
cfg = configparser.ConfigParser(); cfg.read(root/'settings.ini'); cfg = cfg['DEFAULT']
repo = cfg['git_url'].removeprefix('https://github.com/')
MARK = 'colab.research.google.com/assets/colab-badge.svg'


def install_cell(version: str, git_url: str) -> str:
    "The source of the Colab install cell for release `version` of the package at `git_url`."
    return ("#| hide\n# On Colab, install the release this page was built with (from PyPI, else its git tag); "
            "elsewhere this does nothing.\n"
            "if 'google.colab' in str(get_ipython()):\n"
            f"    get_ipython().system('pip install -q hybrid_gen=={version} || '\n"
            f"                         'pip install -q git+{git_url}.git@v{version}')")


INSTALL = install_cell(cfg['version'], cfg['git_url'])

def badge(rel): return (f"[![Open In Colab](https://{MARK})](https://colab.research.google.com/github/{repo}/blob/"
                        f"{cfg['branch']}/nbs/{rel.as_posix()})")

def fix(path, check=False, nbs=None):
    "Add or update the badge and install cell of notebook `path` (under folder `nbs`); True if it changed (or would)."
    nb = nbformat.read(path, as_version=4)
    changed = False
    rel = path.relative_to(nbs or root/'nbs')
    if rel.name != 'index.ipynb' and not any(MARK in c.source for c in nb.cells[:3] if c.cell_type == 'markdown'):
        c0 = nb.cells[0]
        is_title = c0.cell_type == 'markdown' and c0.source.lstrip().startswith('# ')
        assert is_title, f'{rel}: first cell must be the title'
        c0.source = c0.source.rstrip('\n') + '\n\n' + badge(rel)
        changed = True
    codes = [c for c in nb.cells if c.cell_type == 'code']
    old = [c for c in codes[:2] if 'google.colab' in c.source]
    if old and old[0].source != INSTALL:
        old[0].source = INSTALL
        changed = True
    if not old:
        i = nb.cells.index(codes[0]) + (1 if codes[0].source.lstrip().startswith('#| default_exp') else 0)
        nb.cells.insert(i, nbformat.v4.new_code_cell(INSTALL))
        changed = True
    if changed and not check: nbformat.write(nb, path)
    return changed


def notebooks(nbs=None) -> list[Path]:
    "The book's notebooks under `nbs`: every page nbdev renders (files and folders starting with _ or . are skipped)."
    nbs = nbs or root/'nbs'
    skipped = lambda p: any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)
    return [p for p in sorted(nbs.rglob('*.ipynb')) if not skipped(p)]


if __name__ == '__main__':
    check = '--check' in sys.argv
    bad = [p for p in notebooks() if fix(p, check)]
    for p in bad:
        print(('badge or install cell missing or not for ' + cfg['version'] + ': ' if check else 'updated: ')
              + str(p.relative_to(root)))
    sys.exit(1 if check and bad else 0)
