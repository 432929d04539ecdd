"""Maintainer script: execute nbs/index.ipynb (its results table is built from the committed results files),
save its outputs, and write README.md from it.

nbdev_readme needs Quarto; this does the same for index.ipynb's simple cells (Markdown cells, and `#| echo: false`
cells whose printed Markdown is the output) so README.md can be refreshed where Quarto is not installed.
The deploy workflow's Quarto build renders the same notebook for the site.
"""
import os, re, subprocess, sys
from pathlib import Path
import nbformat
from execnb.shell import CaptureShell
from execnb.nbio import read_nb, write_nb

root = Path(__file__).resolve().parents[1]
nbs = root/'nbs'

def _directives(src): return dict(re.findall(r'^#\|\s*([\w-]+):?\s*(.*)$', src, flags=re.M))

def main():
    path = nbs/'index.ipynb'
    nb = read_nb(path)
    cwd = os.getcwd(); os.chdir(nbs)
    try: CaptureShell().run_all(nb, exc_stop=True)
    finally: os.chdir(cwd)
    write_nb(nb, path)
    subprocess.run([str(Path(sys.executable).parent/'nbdev_clean'), '--fname', str(path)], check=True, cwd=root)
    nb = nbformat.read(path, as_version=4)
    parts = []
    for c in nb.cells:
        if c.cell_type == 'markdown': parts.append(c.source); continue
        d = _directives(c.source)
        if 'hide' in d: continue
        if d.get('echo', '').strip() != 'false':
            parts.append('```python\n' + re.sub(r'^#\|.*\n?', '', c.source, flags=re.M).strip() + '\n```')
        for o in c.get('outputs', []):
            if o.output_type == 'stream': parts.append(o.text if d.get('output', '').strip() == 'asis' else '    ' + o.text.replace('\n', '\n    '))
            elif 'text/markdown' in o.get('data', {}): parts.append(o.data['text/markdown'])
    text = '\n\n'.join(p.strip('\n') for p in parts) + '\n'
    (root/'README.md').write_text('<!-- Generated from nbs/index.ipynb by tools/make_readme.py (or nbdev_readme): do not edit. -->\n\n' + text)
    print('wrote README.md')

if __name__ == '__main__': main()
