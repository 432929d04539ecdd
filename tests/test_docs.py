"""The book as readers see it: every page has a title, a description, a Colab badge and an install cell; the sidebar
lists every page in reading order; the home page's links and results point at things that exist."""
import configparser, json, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

NBS = ROOT/'nbs'
PAGES = sorted(p for p in NBS.rglob('*.ipynb')
               if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))
cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini'); cfg = cfg['DEFAULT']
BASE = cfg['doc_host'] + cfg['doc_baseurl']


def _cells(p): return json.loads(p.read_text())['cells']


def _url(p):
    "The page nbdev publishes for notebook `p` (number prefixes dropped from file names, not from folders)."
    rel = p.relative_to(NBS)
    return '/'.join([*rel.parts[:-1], re.sub(r'^\d+[a-z]?_', '', rel.stem) + '.html'])


@pytest.mark.parametrize('nb', PAGES, ids=lambda p: str(p.relative_to(NBS)))
def test_page_has_title_description_badge_and_install_cell(nb):
    first = ''.join(_cells(nb)[0]['source'])
    assert re.match(r'# \S', first), f'{nb.name}: first cell must start with "# Title"'
    assert re.search(r'^> \S', first, flags=re.M), f'{nb.name}: first cell needs a "> description" line'
    if nb.name != 'index.ipynb':
        assert 'colab.research.google.com' in first, f'{nb.name}: no Open-in-Colab badge (python tools/colab.py)'
    codes = [''.join(c['source']) for c in _cells(nb) if c['cell_type'] == 'code']
    assert any('google.colab' in c for c in codes[:2]), f'{nb.name}: no Colab install cell (python tools/colab.py)'


def test_sidebar_is_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'sidebar.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_home_page_links_point_at_pages():
    pages = {_url(p) for p in PAGES}
    text = ''.join(''.join(c['source']) for c in _cells(NBS/'index.ipynb'))
    links = re.findall(re.escape(BASE) + r'/([\w/]+\.html)', text)
    assert links and not sorted(set(links) - pages), sorted(set(links) - pages)


@pytest.mark.parametrize('nb', sorted((NBS/'20_experiments').glob('*.ipynb')), ids=lambda p: p.stem)
def test_experiment_committed_executed_with_results(nb):
    res = json.loads((NBS/'20_experiments'/'results'/f'{nb.stem}.json').read_text())
    assert res['experiment'] == nb.stem and res['preset'] in ('quick', 'long', 'paper') and res['records']
    outs = sum(len(c.get('outputs', [])) for c in _cells(nb) if c['cell_type'] == 'code')
    assert outs > 0, f'{nb.name} is committed without outputs'


def test_readme_shows_every_experiment():
    readme = (ROOT/'README.md').read_text()
    for p in (NBS/'20_experiments'/'results').glob('*.json'):
        assert f'### [{p.stem}]' in readme, f'README.md lacks the {p.stem} results (python tools/make_readme.py)'
