"""Every page of the book, rendered and opened in a browser: tools/preview.py processes each notebook as nbdev does,
renders it with a local MathJax (and KaTeX, the site's engine) in headless Chromium, and this fails on any maths error
or broken image. The browser tests skip where Chromium, the local MathJax or nbconvert is missing, unless
HYBRID_GEN_PREVIEW=required (as .ci/run sets it), where they fail instead."""
import json, os, subprocess, sys
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT/'tools'))
import preview  # noqa: E402


def _missing():
    miss = [] if preview.find_chromium() else ['chromium (apt-get install chromium)']
    if not preview.find_mathjax(): miss.append('a local MathJax 3 (npm install mathjax@3 katex)')
    try: import nbconvert  # noqa: F401
    except ImportError: miss.append('nbconvert (pip install nbconvert)')
    return miss


@pytest.fixture(scope='module')
def browser_tools():
    miss = _missing()
    if miss:
        msg = 'preview needs ' + ', '.join(miss)
        if os.environ.get('HYBRID_GEN_PREVIEW') == 'required': pytest.fail(msg)
        pytest.skip(msg)


def _run(out, *args, timeout=900):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'preview.py'), '--out', str(out), '--quiet', *map(str, args)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert (out/'report.json').exists(), r.stdout + r.stderr
    return r.returncode, json.loads((out/'report.json').read_text())


def test_dollar_lint_flags_what_pandoc_reads_differently():
    lint = preview.dollar_lint
    assert lint('$x$, $\\alpha_1$ and $$ a + b $$ and `$ code$` and\n```\n$ x$\n```\nand \\$5') == []
    assert len(lint('a $ x$ b')) == 1 and len(lint('a $x $ b')) == 1 and len(lint('costs $x$2 here')) == 1


def test_quarto_cell_options_apply():
    import nbformat
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_raw_cell('---\ntitle: T\ndescription: D with $x$\n---'),
        v4.new_code_cell('#| echo: false\n#| output: asis\nprint("**md**")',
                         outputs=[v4.new_output('stream', name='stdout', text='**md**\n')]),
        v4.new_code_cell('#| include: false\nsecret = 1'),
        v4.new_code_cell('#| output: false\nshown_code()', outputs=[v4.new_output('stream', name='stdout', text='x')]),
        v4.new_code_cell('#| echo: false\nquiet()', outputs=[v4.new_output('stream', name='stdout', text='out')])])
    cells = preview.quartoify(nb).cells
    assert [c.cell_type for c in cells] == ['markdown', 'markdown', 'code', 'code']
    assert cells[0].source.startswith('# T') and 'D with $x$' in cells[0].source and cells[1].source == '**md**\n'
    assert cells[2].source == 'shown_code()' and cells[2].outputs == []
    assert cells[3].metadata['transient'] == {'remove_source': True} and cells[3].outputs


def test_checker_reports_bad_tex_and_broken_images(browser_tools, tmp_path):
    "The check can fail: bad TeX, untypeset TeX and a missing image are all reported; a clean page passes."
    import nbformat
    v4 = nbformat.v4
    good = v4.new_notebook(cells=[v4.new_markdown_cell('# Good\n> A clean page with $x^2$'),
                                  v4.new_markdown_cell('Fine: $\\frac{1}{2}$ and $$\\sum_i x_i$$')])
    bad = v4.new_notebook(cells=[v4.new_markdown_cell('# Bad\n> A broken page\n> whose description nbdev cuts here'),
                                 v4.new_markdown_cell('Unclosed: $\\frac{1}{$ here.'),
                                 v4.new_markdown_cell('Missing argument $\\frac{1}$, undefined $\\nosuchmacro$.'),
                                 v4.new_markdown_cell('![gone](missing.png)')])
    nbformat.write(good, tmp_path/'good.ipynb'); nbformat.write(bad, tmp_path/'bad.ipynb')
    rc, rep = _run(tmp_path/'out', tmp_path/'good.ipynb', tmp_path/'bad.ipynb', '--screens', '1')
    pages = {p['page']: p for p in rep['pages']}
    assert rc == 1 and rep['failed'] == ['bad'], rep['failed']
    b, g = pages['bad'], pages['good']
    assert [e['tex'] for e in b['math_err']] == ['\\frac{1}', '\\nosuchmacro'], b['math_err']
    assert any('\\frac{1}{' in s for s in b['untypeset']), b['untypeset']
    assert b['broken_img'] == ['missing.png'] and b['lost_text'] == ['> whose description nbdev cuts here']
    if rep['katex']: assert len(b['katex_err']) == 2, b['katex_err']
    assert g['maths'] == 3 and not preview.failures(g), g   # the description's maths is typeset too
    assert (tmp_path/'out'/'good.png').stat().st_size > 1000


def test_every_page_renders_cleanly(browser_tools, tmp_path):
    "No page of the book has a maths error (MathJax or KaTeX), untypeset TeX, or an image that does not load."
    rc, rep = _run(tmp_path, '--screens', '1')
    assert len(rep['pages']) == len(preview.book_pages())
    bad = {p['page']: preview.failures(p) + [f'{k}: {x}' for k in preview.FAIL_KEYS for x in p.get(k) or []][:10]
           for p in rep['pages'] if preview.failures(p)}
    assert rc == 0 and not bad, json.dumps(bad, indent=1, ensure_ascii=False)
