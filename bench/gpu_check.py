"""The GPU check: in at most ~8 minutes on one GPU, the training-speed benchmark and every experiment's `paper`
preset capped to a few hundred steps and one seed; timings and results go under $OUT (default ./gpu_check_out).

    python bench/gpu_check.py [--budget 480] [--steps 300]

Run it wherever a GPU machine is available (e.g. through the device tool: `python bench/gpu_check.py`), then put
the printed table in your note. Each step has its own time limit so that one slow experiment cannot eat the whole
budget; a step that runs out is reported as such, with whatever it wrote.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _run(cmd, limit, log):
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        status = 'ok' if r.returncode == 0 else f'exit {r.returncode}'
        text = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        status, text = f'timeout after {limit:.0f}s', (e.stdout or b'').decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
    log.write_text(text)
    return status, time.time() - t0


def main():
    from hybrid_gen.experiments import list_experiments, notebook_spec
    ap = argparse.ArgumentParser()
    ap.add_argument('--budget', type=float, default=480, help='seconds for the whole check')
    ap.add_argument('--steps', type=int, default=300, help='step cap of every experiment')
    ap.add_argument('--device', default='cuda')
    a = ap.parse_args()
    out = Path(os.environ.get('OUT', 'gpu_check_out'))
    out.mkdir(parents=True, exist_ok=True)
    exps = list(list_experiments())
    share = a.budget / (len(exps) + 1)
    rows = []
    status, secs = _run([sys.executable, 'bench/gpu_speed.py', '--device', a.device, '--steps', '30'], share,
                        out/'gpu_speed.log')
    rows.append(('gpu_speed', status, secs))
    for name in exps:
        knobs = notebook_spec(list_experiments()[name])['params']
        cmd = [str(Path(sys.executable).parent/'hybrid_gen'), 'run', name, '--out', str(out/name), '--force',
               '-p', 'preset', 'paper', '-p', 'device', a.device]
        if 'seeds' in knobs: cmd += ['-p', 'seeds', '[0]']
        for k in ('steps', 'vae_steps', 'clf_steps', 'baseline_steps', 'semi_steps'):
            if k in knobs: cmd += ['-p', k, str(a.steps)]
        if 'epochs' in knobs: cmd += ['-p', 'epochs', '2']
        status, secs = _run(cmd, share, out/f'{name}.log')
        rows.append((name, status, secs))
    table = '| step | status | seconds |\n|---|---|---|\n' + ''.join(f'| {n} | {s} | {t:.0f} |\n' for n, s, t in rows)
    (out/'gpu_check.md').write_text(table)
    (out/'gpu_check.json').write_text(json.dumps([dict(step=n, status=s, seconds=t) for n, s, t in rows], indent=1))
    print(table)


if __name__ == '__main__':
    main()
