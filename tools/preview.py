"""Maintainer/CI tool: render every page of the book offline, look at it in headless Chromium, and report what a
reader would trip on.

Quarto cannot be installed here, so nobody sees the site before it is published. This tool gets as close as it can:

1. each notebook goes through nbdev's own processors (`nbdev.processors.FilterDefaults`, exactly what
   `nbdev_proc_nbs`/`nbdev_docs` run), so `#| hide`, `#| export`, show_doc, `#| echo: false` and
   `#| output: asis` behave as on the site; the frontmatter becomes the page's title block;
2. nbconvert's HTMLExporter turns it into a standalone HTML page that loads MathJax 3 from a local copy (the npm
   `mathjax` package), with `$...$`/`\\(...\\)` inline and `$$...$$`/`\\[...\\]` display maths, as Quarto does; the
   page sits in an 800px column (Quarto's default body width) and relative image paths resolve against the
   notebook's folder, as they do in nbdev's `_proc/` copy;
3. one headless Chromium (Debian's `chromium`; DevTools protocol over `--remote-debugging-pipe`, so no extra Python
   package) opens each page with the network cut off, waits for MathJax, and counts per page:
   - `math_err`: formulas MathJax could not typeset (`mjx-merror`; undefined macros count, `noundefined` is off);
   - `katex_err`: formulas KaTeX rejects. The site is built with `html-math-method: katex` (nbs/_quarto.yml), so
     each formula is also handed to KaTeX the way Quarto does it (one shared macro table per page,
     `throwOnError`); this runs when the npm `katex` package is found next to `mathjax`;
   - `untypeset`: TeX left as text in prose after typesetting (`$..$` pairs, `\\command`, `_{`/`^{`);
   - `dollar`: `$` that MathJax pairs but pandoc (Quarto's Markdown reader) would not (`$ x$`, `$x $`, `$x$2`), so
     the preview and the site disagree; fix the source;
   - `broken_img`: images that failed to load (external http(s) images are not fetched; they are counted apart);
   - `bad_table`: pipe-table rows whose cell count differs from the header (a bare `|` in a cell, e.g. `q(h|d)`,
     splits it and pandoc shifts the row into the wrong columns; `$..$` and `code` may hold `|`);
   - `lost`: text of the title cell that nbdev drops: it keeps the `# Title` and the *first* `> description` line
     only and deletes the cell, so a description wrapped onto a second `>` line is cut off on the site (the Colab
     badge there is dropped too; that is only noted, as `badge_dropped`);
   - `wide`: tables, images and display maths wider than the column (shown, never fails);
   - `markup`: Markdown that did not parse (stray `*`/backticks in prose, e.g. a docstring `(B, *x_shape)` inside
     show_doc's italics; a Markdown link inside a code block) (shown, never fails: nbconvert's reader is not pandoc);
   - the page height; and it saves a PNG screenshot of the page (full page, or the first `--screens` screens).

Output in `--out` (default /tmp/preview): `<page>.html`, `<page>.png`, `report.json`; a table is printed.
Exit status 1 when any page has a maths error (math_err, katex_err, untypeset, dollar), a broken image, a broken table,
lost title-cell text, or failed to process (nbdev's processors raise, as `nbdev_docs` would) or to load.

    python tools/preview.py                              # every page of the book
    python tools/preview.py nbs/10_models/00_vae.ipynb   # some pages
    python tools/preview.py --screens 1 --out /tmp/p     # first screen only (fast; what the test uses)

Needs `nbconvert` (pip), `chromium` (apt-get install chromium) and MathJax 3 (npm install mathjax@3 katex, found in
$MATHJAX_DIR, <venv>/node_modules, ./node_modules, ~/node_modules or the global npm folder). tests/test_preview.py
runs it when they are present; .ci/run installs them.
"""
import argparse, base64, fcntl, json, os, re, select, shutil, subprocess, sys, tempfile, time, warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
WIDTH, COLUMN, SCREEN = 1000, 800, 900   # window width, Quarto's body column, height of one screen (px)
FAIL_KEYS = ('math_err', 'katex_err', 'untypeset', 'dollar', 'broken_img', 'lost_text', 'bad_table')


# ---------------------------------------------------------------------------------------------------- finding tools
def book_pages(nbs=NBS):
    "Every page of the book, as nbdev renders them (files and folders starting with `_` or `.` are skipped)."
    return sorted(p for p in Path(nbs).rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))


def find_chromium():
    for c in (os.environ.get('CHROMIUM'), 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'):
        if c and shutil.which(c): return shutil.which(c)


def _node_dirs():
    yield from (Path(d) for d in os.environ.get('MATHJAX_DIR', '').split(os.pathsep) if d)
    yield from (Path(sys.prefix)/'node_modules', ROOT/'node_modules', Path.home()/'node_modules',
                Path('/usr/local/lib/node_modules'), Path('/usr/lib/node_modules'))


def find_mathjax():
    "The local MathJax 3 `tex-chtml-full.js`, or None."
    for d in _node_dirs():
        for js in (d/'es5'/'tex-chtml-full.js', d/'mathjax'/'es5'/'tex-chtml-full.js'):
            if js.exists(): return js


def find_katex():
    "The local `katex.min.js` (the site's maths engine), or None."
    for d in _node_dirs():
        for js in (d/'dist'/'katex.min.js', d/'katex'/'dist'/'katex.min.js', d.parent/'katex'/'dist'/'katex.min.js'):
            if js.exists(): return js


def page_name(nb):
    nb = Path(nb).resolve()
    try: return nb.relative_to(NBS).with_suffix('').as_posix()
    except ValueError: return nb.stem


# ------------------------------------------------------------------------------------- notebook -> standalone HTML
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<base href="{{ resources.preview.base }}">
<style>{{ resources.preview.css }}</style>
<script>window.MathJax = {{ resources.preview.mathjax_config }};</script>
<script id="MathJax-script" src="{{ resources.preview.mathjax }}"></script>
{%- if resources.preview.katex %}
<script src="{{ resources.preview.katex }}"></script>
{%- endif %}
{%- endblock html_head_js_mathjax -%}
"""

_CSS = f"""
main {{ max-width: {COLUMN}px; margin: 0 auto; }}
body.jp-Notebook {{ padding: 0 10px; }}
.preview-description {{ color: #5a6570; font-size: 1.1em; border-bottom: 1px solid #dee2e6; margin-bottom: 1em; }}
"""

_MATHJAX_CONFIG = {
    'tex': {'inlineMath': [['$', '$'], ['\\(', '\\)']], 'displayMath': [['$$', '$$'], ['\\[', '\\]']],
            'processEscapes': True, 'processEnvironments': True,
            'packages': {'[-]': ['noundefined', 'noerrors']}},   # undefined macros are errors, as in KaTeX
    'options': {'enableMenu': False},
    'startup': {'typeset': True},
}

WIDGET = 'application/vnd.jupyter.widget-view+json'
_re_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def _quarto_opts(cell):
    "Split a processed code cell into its Quarto options (`#| key: value` lines on top) and the code shown."
    opts, lines = {}, cell.source.splitlines()
    while lines and (m := _re_opt.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('\'"').lower(); lines.pop(0)
    return opts, '\n'.join(lines)


def _asis_markdown(outputs):
    parts = []
    for o in outputs:
        if o.get('output_type') == 'stream' and o.get('name') == 'stdout': parts.append(''.join(o.get('text', '')))
        elif 'data' in o:
            d = o['data']
            if 'text/markdown' in d: parts.append(''.join(d['text/markdown']))
            elif 'text/html' in d: parts.append(''.join(d['text/html']))
            elif 'text/plain' in d: parts.append(''.join(d['text/plain']))
    return '\n\n'.join(parts)


_re_link_attrs = re.compile(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')


def _pandoc_attrs(attrs):
    "Pandoc's `{#id .class key=value}` as HTML attributes."
    out, cls = [], []
    for a in re.findall(r'#[\w-]+|\.[\w-]+|[\w-]+="[^"]*"|[\w-]+=[^\s"]+', attrs):
        if a.startswith('.'): cls.append(a[1:])
        elif a.startswith('#'): out.append(f'id="{a[1:]}"')
        else: out.append(a)
    return ' '.join(out + ([f'class="{" ".join(cls)}"'] if cls else []))


def pandoc_markdown(md):
    "The bits of pandoc Markdown that nbconvert's reader lacks and the book uses: link attributes (show_doc's `[source](..){..}`)."
    return _re_link_attrs.sub(lambda m: f'<a href="{m.group(2)}" {_pandoc_attrs(m.group(3))}>{m.group(1)}</a>', md)


def quartoify(nb):
    """Do to the processed notebook (an nbformat node) what Quarto does when it renders it: the frontmatter becomes the
    title block; `include`, `echo`, `output` (`false`/`asis`) and the remove-* tags apply; `#|` lines are not shown."""
    import nbformat, yaml
    md = nbformat.v4.new_markdown_cell
    cells, fm = [], {}
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            m = re.match(r'\s*---\s*\n(.*?)\n---', c.source, flags=re.S)
            if m: fm.update(yaml.safe_load(m.group(1)) or {}); continue
        tags = set(c.get('metadata', {}).get('tags', []))
        if tags & {'remove-cell', 'remove_cell'}: continue
        if c.cell_type == 'markdown': c.source = pandoc_markdown(c.source)
        if c.cell_type != 'code': cells.append(c); continue
        opts, code = _quarto_opts(c)
        if opts.get('include') == 'false': continue
        c.source = code
        show_input = opts.get('echo', 'true') != 'false' and not tags & {'remove-input', 'remove_input'}
        if opts.get('output') == 'false' or tags & {'remove-output', 'remove_output'}: c.outputs = []
        # a widget is not its text/plain repr; without a kernel (and with nbdev_clean's metadata) it shows nothing
        c.outputs = [o for o in c.outputs if WIDGET not in o.get('data', {})]
        asis = opts.get('output') == 'asis'
        if asis:
            text = _asis_markdown(c.outputs); c.outputs = []
        if show_input or c.outputs:
            if not show_input: c.setdefault('metadata', {})['transient'] = {'remove_source': True}
            cells.append(c)
        if asis and text.strip(): cells.append(md(pandoc_markdown(text)))
    head = []
    if fm.get('title'): head.append(f"# {fm['title']}")
    if fm.get('description'): head.append(f"<div class=\"preview-description\">\n\n{fm['description']}\n\n</div>")
    if head: cells.insert(0, md('\n\n'.join(head)))
    nb.cells = cells
    nb.metadata.pop('widgets', None)
    nb.metadata['title'] = str(fm.get('title', ''))
    return nb


def to_html(src, dst, mathjax, katex=None):
    """Process notebook `src` with nbdev's processors, apply Quarto's cell options, and write standalone HTML to
    `dst`. Returns the nbdev warnings raised on the way and the page's Markdown (cells and Markdown outputs)."""
    os.environ['IN_TEST'] = '1'   # as nbdev's own processing driver sets it
    import nbformat
    from execnb.nbio import read_nb, nb2str
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbdev.processors import FilterDefaults
    src = Path(src).resolve()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        nb = read_nb(src)
        FilterDefaults()(nb)
    nb = quartoify(nbformat.reads(nb2str(nb), as_version=4))
    exp = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'preview.html.j2': _TEMPLATE})],
                       template_file='preview.html.j2', exclude_input_prompt=True, exclude_output_prompt=True)
    res = {'preview': {'base': src.parent.as_uri() + '/', 'css': _CSS, 'mathjax': Path(mathjax).as_uri(),
                       'katex': Path(katex).as_uri() if katex else '', 'mathjax_config': json.dumps(_MATHJAX_CONFIG)},
           'metadata': {'name': src.stem}}
    html, _ = exp.from_notebook_node(nb, resources=res)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_text(html, encoding='utf-8')
    md = [c.source for c in nb.cells if c.cell_type == 'markdown']
    md += [''.join(o['data']['text/markdown']) for c in nb.cells if c.cell_type == 'code'
           for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    return [str(w.message).strip().splitlines()[0][:200] for w in caught if str(w.message).strip()], md


# --------------------------------------------------------------------------- `$` that pandoc reads differently
_re_code = re.compile(r'(^|\n)(```|~~~).*?\n\2[^\n]*|(`+).+?\3', flags=re.S)


def dollar_lint(markdown):
    """Inline `$` delimiters that MathJax (and nbconvert) pair but pandoc would not: pandoc wants no space right after
    the opening `$`, none right before the closing one, and no digit right after it. Returns the offending snippets."""
    text = _re_code.sub(lambda m: ' ' * len(m.group(0)), markdown)
    text = re.sub(r'\$\$.*?\$\$', lambda m: ' ' * len(m.group(0)), text, flags=re.S)   # display maths
    text = text.replace('\\$', '  ')
    bad, i = [], 0
    dollars = [m.start() for m in re.finditer(r'\$', text)]
    while i + 1 < len(dollars):
        a, b = dollars[i], dollars[i + 1]
        if '\n\n' in text[a:b]: i += 1; continue
        after = text[b + 1:b + 2]
        if text[a + 1].isspace() or text[b - 1].isspace() or after.isdigit():
            bad.append(markdown[max(0, a - 20):b + 21].replace('\n', ' '))
        i += 2
    return bad


def table_lint(markdown):
    """Pipe-table rows with more or fewer cells than their header: a bare `|` in a cell (e.g. `q(h|d)` in a claim)
    splits it, and pandoc shifts the rest of the row into the wrong columns. `$..$` maths and `code` may hold `|`
    (pandoc parses them as one inline); elsewhere write `\\|` or `\\mid`. Returns the offending rows."""
    def cells(line):
        line = re.sub(r'(`+).*?\1|\$[^$\n]*\$|\\\|', 'x', line.strip())
        return len(line.strip('|').split('|'))
    text = re.sub(r'(^|\n)(```|~~~).*?\n\2[^\n]*', '', markdown, flags=re.S)
    lines, bad = text.splitlines(), []
    for i, l in enumerate(lines[:-1]):
        if not (l.lstrip().startswith('|') and re.fullmatch(r'\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*', lines[i + 1])): continue
        n, j = cells(l), i + 2
        while j < len(lines) and lines[j].lstrip().startswith('|'):
            if cells(lines[j]) != n: bad.append(lines[j].strip()[:160])
            j += 1
    return bad


def title_cell_lint(src):
    """What nbdev's frontmatter processor drops from the page: it turns the first Markdown cell with a `# Title` into the
    title and the *first* `> description` line, and deletes the cell. Returns (lost lines, whether a Colab badge is lost)."""
    nb = json.loads(Path(src).read_text(encoding='utf-8'))
    for c in nb['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] != 'markdown' or not re.search(r'^#\s+\S', s, flags=re.M): continue
        lines = [l for l in s.splitlines() if l.strip()]
        title = next(l for l in lines if re.match(r'^#\s+\S', l))
        desc = next((l for l in lines if re.match(r'^>\s+\S', l)), None)
        rest = [l for l in lines if l not in (title, desc) and not re.match(r'^-\s+\S.*:.*\S\s*$', l)]
        badge = [l for l in rest if 'colab.research.google.com' in l]
        return [l for l in rest if l not in badge], bool(badge)
    return [], False


def page_markdown(src):
    "The Markdown cells and Markdown outputs of notebook `src` as stored (used when processing it failed)."
    nb = json.loads(Path(src).read_text(encoding='utf-8'))
    parts = []
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': parts.append(''.join(c['source']))
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}): parts.append(''.join(o['data']['text/markdown']))
    return parts


def convert(src, dst, mathjax, katex):
    "Worker: one page to HTML plus the source-level checks. Never raises: a failure is reported for the page."
    t = time.time()
    out = {'page': page_name(src), 'source': str(src), 'html': str(dst), 'errors': []}
    try: out['nbdev_warnings'], md = to_html(src, dst, mathjax, katex)
    except Exception as e:
        cause = f' (caused by {type(e.__cause__).__name__}: {e.__cause__})' if e.__cause__ else ''
        out['errors'].append(f'processing failed{cause}: {type(e).__name__}: {str(e)[:300]}')
        md = page_markdown(src)
    try:
        out['dollar'] = [s for m in md for s in dollar_lint(m)]
        out['bad_table'] = [s for m in md for s in table_lint(m)]
        out['lost_text'], out['badge_dropped'] = title_cell_lint(src)
    except Exception as e: out['errors'].append(f'reading failed: {e}')
    out['convert_s'] = round(time.time() - t, 1)
    return out


def _importable(f):
    """`f` from this file imported as the module `preview`: workers unpickle it by module name, and the IPython shell that
    nbdev's exec_show_docs starts in a worker replaces its `__main__`."""
    if f.__module__ != '__main__': return f
    sys.path.insert(0, str(Path(__file__).parent))
    import preview
    return getattr(preview, f.__name__)


def _worker_init():
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
    os.chdir(ROOT)   # nbdev finds settings.ini from here, as nbdev_docs run at the repo root does


# ---------------------------------------------------------------------------- Chromium over the DevTools pipe
class Chromium:
    "Headless Chromium driven through `--remote-debugging-pipe` (fd 3 in, fd 4 out, NUL-separated JSON)."
    def __init__(self, exe, log=None):
        self.profile = tempfile.mkdtemp(prefix='preview-chromium-')
        to_r, self._w = os.pipe(); self._r, from_w = os.pipe()
        cr, cw = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_r, from_w))
        os.close(to_r); os.close(from_w)
        args = [exe, '--headless', '--remote-debugging-pipe', '--no-sandbox', '--disable-gpu', '--disable-quic',
                '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--disable-extensions', '--disable-dev-shm-usage',
                '--mute-audio', '--hide-scrollbars', '--allow-file-access-from-files',
                '--host-resolver-rules=MAP * ~NOTFOUND',   # offline: http(s) fails at once, as in a sandbox
                f'--user-data-dir={self.profile}', 'about:blank']
        def fds(): os.dup2(cr, 3); os.dup2(cw, 4)   # in the child, before exec: the pipe ends on fds 3 and 4
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL)
        os.close(cr); os.close(cw)
        self._buf, self._id, self._events = b'', 0, []

    def _read(self, timeout):
        while b'\0' not in self._buf:
            if not select.select([self._r], [], [], timeout)[0]: raise TimeoutError('Chromium did not answer')
            chunk = os.read(self._r, 1 << 20)
            if not chunk: raise RuntimeError('Chromium exited')
            self._buf += chunk
        msg, self._buf = self._buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, session=None, timeout=60, **params):
        self._id += 1
        msg = {'id': self._id, 'method': method, 'params': params}
        if session: msg['sessionId'] = session
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        end = time.time() + timeout
        while True:
            m = self._read(max(0.1, end - time.time()))
            if m.get('id') == self._id:
                if 'error' in m: raise RuntimeError(f"{method}: {m['error'].get('message')}")
                return m.get('result', {})
            self._events.append(m)

    def wait_event(self, name, session, timeout=60):
        end = time.time() + timeout
        while True:
            for i, m in enumerate(self._events):
                if m.get('method') == name and m.get('sessionId') == session: return self._events.pop(i)
            self._events.append(self._read(max(0.1, end - time.time())))

    def close(self):
        try: self.call('Browser.close', timeout=5)
        except Exception: pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        for fd in (self._r, self._w):
            try: os.close(fd)
            except OSError: pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self): return self
    def __exit__(self, *a): self.close()


_CHECK_JS = r"""
(async () => {
  const main0 = () => document.querySelector('main') || document.body;
  const out = {markup: [], mathjax: false, katex: !!window.katex, maths: 0, math_err: [], katex_err: [], untypeset: [],
               broken_img: [], external_img: [], images: 0, wide: [], height: 0};
  const MJ = window.MathJax;
  if (MJ && MJ.startup && MJ.startup.promise) { await MJ.startup.promise; out.mathjax = !!MJ.startup.document; }
  await Promise.all([...document.images].map(im => im.complete ? null : new Promise(r => {
    im.addEventListener('load', r); im.addEventListener('error', r); setTimeout(r, 5000); })));
  const items = out.mathjax ? Array.from(MJ.startup.document.math) : [];
  out.maths = items.length;
  const macros = {};
  for (const it of items) {
    const root = it.typesetRoot, e = root && root.querySelector && root.querySelector('mjx-merror');
    if (e) out.math_err.push({tex: it.math.slice(0, 300), error: e.getAttribute('data-mjx-error') || e.textContent});
    if (window.katex) {
      try { katex.renderToString(it.math, {displayMode: !!it.display, throwOnError: true, macros: macros, fleqn: false,
                                           strict: 'ignore'}); }
      catch (err) { out.katex_err.push({tex: it.math.slice(0, 300), error: String(err.message || err).slice(0, 300)}); }
    }
  }
  const stray = document.querySelectorAll('mjx-merror').length;   // any error node not tied to a formula
  for (let i = out.math_err.length; i < stray; i++) out.math_err.push({tex: '?', error: 'mjx-merror'});
  // TeX left as text in prose
  const skip = 'script,style,pre,code,textarea,mjx-container,.jp-CodeCell .jp-InputArea';
  const tex = /\$[^$\n]+\$|\$\$|\\[a-zA-Z]{2,}|\\[()\[\]]|[_^]\{/;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const m = n.data.match(tex);
    if (m && !n.parentElement.closest(skip))
      out.untypeset.push(n.data.slice(Math.max(0, m.index - 30), m.index + m[0].length + 30).replace(/\s+/g, ' '));
  }
  // Markdown that did not parse: emphasis stars or backticks left in prose (informational: nbconvert's reader is not pandoc)
  const mk = /(^|[\s(\[])\*{1,2}(?=[^\s*])|[^\s*]\*{1,2}(?=[\s.,;:)\]]|$)|`|\|\s*:?-{3,}:?\s*\|/;
  const walk2 = document.createTreeWalker(main0(), NodeFilter.SHOW_TEXT);
  for (let n = walk2.nextNode(); n; n = walk2.nextNode()) {
    const m = n.data.match(mk);
    if (m && !n.parentElement.closest(skip))
      out.markup.push(n.data.slice(Math.max(0, m.index - 30), m.index + m[0].length + 30).replace(/\s+/g, ' '));
  }
  for (const pre of main0().querySelectorAll('.jp-RenderedMarkdown pre')) {   // e.g. show_doc signatures whose comments nbdev linkified
    const m = pre.textContent.match(/\[`?[^\]\n]*`?\]\(https?:[^)\s]*\)/);
    if (m) out.markup.push('link in code: ' + m[0].slice(0, 120));
  }
  for (const im of document.images) {
    const src = im.currentSrc || im.src || im.getAttribute('src') || '';
    out.images++;
    if (/^https?:/.test(src)) out.external_img.push(src.slice(0, 160));
    else if (!im.complete || im.naturalWidth === 0) out.broken_img.push((im.getAttribute('src') || src).slice(0, 160));
  }
  const main = document.querySelector('main') || document.body, col = main.getBoundingClientRect();
  for (const el of main.querySelectorAll('table, img, svg, mjx-container[display="true"]')) {
    if (el.closest('mjx-container') && el.tagName.toLowerCase() !== 'mjx-container') continue;
    const r = el.getBoundingClientRect(), w = Math.max(r.width, el.scrollWidth || 0);
    if (r.right > col.right + 1 || w > col.width + 1)
      out.wide.push({what: el.tagName.toLowerCase(), width: Math.round(w), column: Math.round(col.width),
                     text: (el.textContent || el.getAttribute('src') || '').replace(/\s+/g, ' ').slice(0, 80)});
  }
  out.height = Math.ceil(main.getBoundingClientRect().bottom + window.scrollY);
  return out;
})()
"""


def check_page(browser, html, png, screens=0, max_height=30000, timeout=120):
    """Open `html` in `browser`, run the checks, save the screenshot to `png` (full page when `screens` is 0, else the
    first `screens` screens; at most `max_height` px). Returns the browser's findings."""
    tid = browser.call('Target.createTarget', url='about:blank')['targetId']
    try:
        sid = browser.call('Target.attachToTarget', targetId=tid, flatten=True)['sessionId']
        browser.call('Page.enable', session=sid)
        metrics = dict(width=WIDTH, deviceScaleFactor=1, mobile=False, session=sid)
        browser.call('Emulation.setDeviceMetricsOverride', height=SCREEN, **metrics)
        browser.call('Page.navigate', url=Path(html).resolve().as_uri(), session=sid)
        browser.wait_event('Page.loadEventFired', sid, timeout)
        r = browser.call('Runtime.evaluate', expression=_CHECK_JS, awaitPromise=True, returnByValue=True,
                         session=sid, timeout=timeout)
        if 'exceptionDetails' in r: raise RuntimeError(f"check script failed: {r['exceptionDetails'].get('text')}")
        res = r['result']['value']
        h = min(res['height'], max_height, screens * SCREEN if screens else max_height)
        res['shot_height'] = h
        if png:
            browser.call('Emulation.setDeviceMetricsOverride', height=h, **metrics)
            shot = browser.call('Page.captureScreenshot', format='png', captureBeyondViewport=True, session=sid,
                                clip={'x': 0, 'y': 0, 'width': WIDTH, 'height': h, 'scale': 1}, timeout=timeout)
            Path(png).write_bytes(base64.b64decode(shot['data']))
        return res
    finally:
        try: browser.call('Target.closeTarget', targetId=tid, timeout=10)
        except Exception: pass


# ------------------------------------------------------------------------------------------------------ driver
def failures(page):
    "What fails a page: processing/loading errors, maths errors (MathJax or KaTeX, untypeset TeX, `$` that pandoc reads differently), broken images."
    f = list(page.get('errors', []))
    f += [f"{k}: {len(page[k])}" for k in FAIL_KEYS if page.get(k)]
    return f


def _row(p):
    n = lambda k: len(p.get(k) or [])
    return (f"{p['page']:<44} {p.get('maths', 0):>5} {n('math_err'):>4} {n('katex_err'):>5} {n('untypeset'):>5} "
            f"{n('dollar'):>6} {p.get('images', 0):>4} {n('broken_img'):>6} {n('bad_table'):>5} {n('lost_text'):>4} {n('wide'):>4} {n('markup'):>6} "
            f"{p.get('height', 0):>7} "
            f"{p.get('seconds', 0):>5}  {'FAIL' if failures(p) else 'ok'}")


HEADER = (f"{'page':<44} {'maths':>5} {'err':>4} {'katex':>5} {'untyp':>5} {'dollar':>6} {'imgs':>4} {'broken':>6} "
          f"{'table':>5} {'lost':>4} {'wide':>4} {'markup':>6} {'height':>7} {'sec':>5}  status")


def preview(notebooks=None, out='/tmp/preview', screens=0, max_height=30000, workers=2, quiet=False):
    "Render and check `notebooks` (default: every page); write `out`/report.json; return the report."
    chromium, mathjax, katex = find_chromium(), find_mathjax(), find_katex()
    if not chromium: raise SystemExit('preview: no Chromium (apt-get install chromium)')
    if not mathjax: raise SystemExit('preview: no local MathJax 3 (npm install mathjax@3 katex)')
    notebooks = [Path(p).resolve() for p in (notebooks or book_pages())]
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    t0, pages = time.time(), []
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    say(f'preview: {len(notebooks)} pages -> {out}  (MathJax {mathjax}; KaTeX {katex or "not found"})')
    say(HEADER)
    import multiprocessing as mp
    with open(out/'chromium.log', 'wb') as log, Chromium(chromium, log) as browser, \
         ProcessPoolExecutor(max(1, min(workers, 2)), mp_context=mp.get_context('spawn'), initializer=_worker_init) as ex:
        jobs = [ex.submit(_importable(convert), nb, out/f'{page_name(nb)}.html', str(mathjax), str(katex or ''))
                for nb in notebooks]
        for job in as_completed(jobs):
            p = job.result(); t = time.time()
            if not p['errors']:
                try: p.update(check_page(browser, p['html'], out/f"{p['page']}.png", screens, max_height))
                except Exception as e: p['errors'].append(f'browser: {type(e).__name__}: {e}')
                if not p.get('mathjax', True): p['errors'].append('MathJax did not load')
            p['seconds'] = round(p.pop('convert_s') + time.time() - t, 1)
            pages.append(p); say(_row(p))
    pages.sort(key=lambda p: p['page'])
    report = {'seconds': round(time.time() - t0, 1), 'mathjax': str(mathjax), 'katex': str(katex or ''),
              'chromium': chromium, 'pages': pages, 'failed': [p['page'] for p in pages if failures(p)]}
    (out/'report.json').write_text(json.dumps(report, indent=1, ensure_ascii=False))
    say(f"preview: {len(pages)} pages in {report['seconds']}s, {len(report['failed'])} failing; report {out/'report.json'}")
    for p in pages:
        for k in ('errors',) + FAIL_KEYS + ('wide', 'markup'):
            for item in p.get(k) or []: say(f"  {p['page']}: {k}{'' if k in ('errors',) + FAIL_KEYS else ' (info)'}: {item}")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='*', help='notebooks to preview (default: every page of the book)')
    ap.add_argument('--out', default='/tmp/preview', help='output folder (default /tmp/preview)')
    ap.add_argument('--screens', type=int, default=0, help=f'screenshot only the first N screens of {SCREEN}px (0: full page)')
    ap.add_argument('--max-height', type=int, default=30000, help='never screenshot more than this many px')
    ap.add_argument('--workers', type=int, default=2, help='processes converting notebooks (at most 2)')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args(argv)
    report = preview(a.notebooks or None, a.out, a.screens, a.max_height, a.workers, a.quiet)
    return 1 if report['failed'] else 0


if __name__ == '__main__': sys.exit(main())
