"""Maintainer script: execute an experiment notebook with its `quick` preset and commit-ready outputs.

    python tools/run_quick.py NAME [--preset quick] [--resume] [-p key value ...]

Runs papermill on nbs/20_experiments/NAME.ipynb in a scratch folder, drops papermill's injected-parameters
cell, writes the executed notebook back over the source (outputs kept: the docs show them), cleans it with
nbdev_clean, and copies the run's results.json to nbs/20_experiments/results/NAME.json. `--resume` keeps the
scratch folder of an interrupted run, so the runner's job cache serves the jobs that had finished.
"""
import argparse, json, shutil, subprocess, sys, time
from pathlib import Path
import nbformat, papermill as pm

root = Path(__file__).resolve().parents[1]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('name')
    ap.add_argument('--preset', default='quick')
    ap.add_argument('--resume', action='store_true', help='keep /tmp/NAME_run and its job cache')
    ap.add_argument('-p', nargs=2, action='append', default=[], metavar=('KEY', 'VALUE'))
    a = ap.parse_args()
    src = root/'nbs'/'20_experiments'/f'{a.name}.ipynb'
    run = Path('/tmp')/f'{a.name}_run'
    if not a.resume: shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True, exist_ok=True)
    from hybrid_gen.experiments import check_params
    params = {'preset': a.preset, 'out_dir': str(run), **check_params(a.name, dict(a.p))}  # typed, as the CLI does
    t0 = time.time()
    pm.execute_notebook(str(src), str(run/f'{a.name}.ipynb'), parameters=params, cwd=str(src.parent),
                        kernel_name='python3', progress_bar=False)
    dt = time.time() - t0
    nb = nbformat.read(run/f'{a.name}.ipynb', as_version=4)
    nb.cells = [c for c in nb.cells if 'injected-parameters' not in c.get('metadata', {}).get('tags', [])]
    for c in nb.cells:  # papermill bookkeeping is not part of the book
        c.metadata.pop('papermill', None); c.metadata.pop('execution', None)
    nb.metadata.pop('papermill', None)
    nbformat.write(nb, src)
    subprocess.run([str(Path(sys.executable).parent/'nbdev_clean'), '--fname', str(src)], check=True, cwd=root)
    res = json.loads((run/'results.json').read_text())
    dst = root/'nbs'/'20_experiments'/'results'/f'{a.name}.json'
    dst.write_text(json.dumps(res, indent=1) + '\n')
    print(f'{a.name}: {a.preset} run took {dt:.0f}s; wrote {src.relative_to(root)} and {dst.relative_to(root)}')

if __name__ == '__main__': main()
