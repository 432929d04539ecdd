"""A release is what settings.ini's `version` says everywhere: the package's `__version__`, an entry in CHANGELOG.md,
and the Colab install cell of every page, which installs that release (from PyPI, else its git tag).

After a version bump (`nbdev_bump_version`), run `nbdev_export` and `python tools/colab.py`, and write the
CHANGELOG entry, before tagging `vX.Y.Z`. The wheel itself is checked in tests/test_install.py.
"""
import configparser, json, os, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT/'tools'))
import colab  # noqa: E402

CFG = configparser.ConfigParser(delimiters=['='])
CFG.read(ROOT/'settings.ini')
CFG = CFG['DEFAULT']
VERSION = CFG['version']


def _pages() -> list[Path]:
    "Every notebook nbdev renders as a page (files and folders starting with _ or . are skipped)."
    nbs = ROOT/'nbs'
    skipped = lambda p: any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)
    return [p for p in sorted(nbs.rglob('*.ipynb')) if not skipped(p)]


def _colab_cell(path: Path) -> str:
    codes = [c for c in json.loads(path.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
    cells = [''.join(c['source']) for c in codes[:2] if 'google.colab' in ''.join(c['source'])]
    assert cells, f'{path.relative_to(ROOT)}: no Colab install cell'
    return cells[0]


def test_version_is_semantic_and_exported():
    assert re.fullmatch(r'\d+\.\d+\.\d+', VERSION), VERSION
    init = (ROOT/'hybrid_gen'/'__init__.py').read_text()
    assert f'__version__ = "{VERSION}"' in init, 'settings.ini has a new version: run nbdev_export'


def test_changelog_has_an_entry_for_the_current_version():
    text = (ROOT/'CHANGELOG.md').read_text(encoding='utf-8')
    entries = re.split(r'^## ', text, flags=re.M)[1:]
    heads = [e.split('\n', 1)[0].split()[0] for e in entries]
    assert VERSION in heads, f'CHANGELOG.md has no "## {VERSION}" entry (it has {heads})'
    body = entries[heads.index(VERSION)]
    assert re.search(r'^- ', body, flags=re.M), f'the {VERSION} entry lists no change'
    assert heads == sorted(heads, key=lambda v: tuple(map(int, v.split('.'))), reverse=True), 'newest entry first'


def test_every_page_installs_the_current_release_on_colab():
    "Fails until `python tools/colab.py` has rewritten the install cells after a version bump."
    pages = _pages()
    assert len(pages) > 20, pages
    stale = []
    for p in pages:
        cell = _colab_cell(p)
        pins = set(re.findall(r'hybrid_gen==([\w.]+)', cell)) | set(re.findall(r'\.git@v([\w.]+)', cell))
        if pins != {VERSION}: stale.append(f'{p.relative_to(ROOT)}: {sorted(pins) or "main"}')
    assert not stale, f'{len(stale)} pages do not install {VERSION} (run python tools/colab.py):\n' + '\n'.join(stale)


def test_colab_tool_notebooks_are_the_pages():
    assert colab.notebooks() == _pages()


def _fake_pip(bindir: Path, fail: str) -> Path:
    "A `pip` on PATH that logs its arguments and fails when they contain `fail`."
    log = bindir/'pip.log'
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir/'pip').write_text(f'#!/bin/sh\necho "$*" >> {log}\ncase "$*" in *{fail}*) exit 1;; esac\nexit 0\n')
    (bindir/'pip').chmod(0o755)
    return log


def _run_cell_on(shell_name: str, tmp_path: Path, fail: str) -> list[str]:
    "Run the install cell as if in a shell called `shell_name`, with a fake pip; the pip calls made."
    log = _fake_pip(tmp_path/'bin', fail)
    env = dict(os.environ, PATH=f"{tmp_path/'bin'}{os.pathsep}{os.environ['PATH']}")

    class Shell:
        def __str__(self): return f'<{shell_name}.Shell object>'
        def system(self, cmd): subprocess.run(['sh', '-c', cmd], env=env, check=False)

    shell = Shell()
    exec(colab.INSTALL, {'get_ipython': lambda: shell})
    return log.read_text().splitlines() if log.exists() else []


def test_install_cell_pins_the_release_and_falls_back_to_its_tag(tmp_path):
    tag = f"git+{CFG['git_url']}.git@v{VERSION}"
    assert _run_cell_on('ipykernel.zmqshell.ZMQInteractiveShell', tmp_path/'local', fail='nothing') == []
    assert _run_cell_on('google.colab._shell', tmp_path/'pypi', fail='nothing') == [f'install -q hybrid_gen=={VERSION}']
    calls = _run_cell_on('google.colab._shell', tmp_path/'tag', fail='hybrid_gen==')
    assert calls == [f'install -q hybrid_gen=={VERSION}', f'install -q {tag}'], calls
    assert max(map(len, colab.INSTALL.splitlines())) <= 120


def test_colab_tool_rewrites_an_old_install_cell_once(tmp_path):
    nbs = tmp_path/'nbs'
    page = nbs/'00_foundations'/'00a_files.ipynb'
    page.parent.mkdir(parents=True)
    nb = json.loads((ROOT/'nbs'/'00_foundations'/'00a_files.ipynb').read_text(encoding='utf-8'))
    old = ("#| hide\n# On Colab, install the library this notebook belongs to; elsewhere this does nothing.\n"
           "if 'google.colab' in str(get_ipython()): get_ipython().run_line_magic('pip', 'install -q "
           f"git+{CFG['git_url']}.git')")
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and 'google.colab' in ''.join(c['source']))
    cell['source'] = old
    page.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    before = page.read_text()
    assert colab.fix(page, check=True, nbs=nbs) and page.read_text() == before, '--check must not write'
    assert colab.fix(page, nbs=nbs)
    assert _colab_cell(page) == colab.INSTALL
    n_cells = len(json.loads(page.read_text())['cells'])
    assert not colab.fix(page, nbs=nbs), 'a second run must change nothing'
    assert n_cells == len(nb['cells'])
