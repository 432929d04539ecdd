"The command line and papermill end to end, on the smoke preset, plus the errors a user can make."
import json, os
from pathlib import Path
import pytest
from conftest import run_cli, ROOT
from hybrid_gen.experiments import list_experiments, experiment_params, run_experiment, read_results

EXPERIMENTS = sorted(list_experiments())


def test_list_names_every_experiment():
    r = run_cli('list')
    assert r.returncode == 0, r.stderr
    assert sorted(l.split()[0] for l in r.stdout.splitlines()) == EXPERIMENTS
    assert 'vae' in EXPERIMENTS


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_parameters_cell_survives_nbdev_clean(name):
    "papermill must find the tagged parameters cell of every experiment, with preset first."
    import papermill as pm
    ps = experiment_params(name)
    assert list(ps)[0] == 'preset' and list(ps)[1] in ('seeds', 'seed')
    std = [k for k in list(ps)[2:7] if k not in ('data', 'download')]  # the optional data-set knobs
    assert std[:3] == ['device', 'data_dir', 'out_dir']
    assert list(pm.inspect_notebook(str(list_experiments()[name]))) == list(ps)


def test_run_vae_smoke_end_to_end(tmp_path):
    out = tmp_path/'vae-run'
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'seeds', '[3, 4]', '--out', str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = read_results(out)
    assert (res['experiment'], res['preset'], res['seeds']) == ('vae', 'smoke', [3, 4])
    assert res['records'] and all('model' in rec and rec['seed'] in (3, 4) for rec in res['records'])
    assert all(row['n_seeds'] == 2 for row in res['summary'])
    assert res['claims'] and all(c['verdict'] in ('held', 'not held', 'undecided', 'not testable') for c in res['claims'])
    assert all(c['n_seeds'] == 2 for c in res['claims'])
    assert '± ' in r.stdout and 'verdict' in r.stdout
    assert (out/'vae.ipynb').exists()
    nb = json.loads((out/'vae.ipynb').read_text())
    assert any(c['cell_type'] == 'code' and c.get('outputs') for c in nb['cells'])
    assert 'results.json' in r.stdout and '| model' in r.stdout
    files = json.loads((out/'run.json').read_text())['files']  # the manifest lists every file the run wrote
    assert {'vae.ipynb', 'results.json', 'jobs/', 'run.json'} <= set(files) and any(f.endswith('.png') for f in files)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file() and 'jobs' not in p.parts}
    assert on_disk <= set(files), on_disk - set(files)
    rec = json.loads(next(out.glob('jobs/*/record.json')).read_text())  # when each job ran, not in the records
    assert rec['started'] <= rec['finished'] and abs(rec['finished'] - rec['started'] - rec['job_seconds']) < 1e-3
    assert not any('started' in r or 'finished' in r for r in res['records'])


def test_unknown_experiment_is_a_clear_error():
    r = run_cli('run', 'no_such_thing')
    assert r.returncode == 2
    assert 'unknown experiment' in r.stderr and 'vae' in r.stderr and 'Traceback' not in r.stderr


def test_unknown_parameter_is_a_clear_error(tmp_path):
    r = run_cli('run', 'vae', '-p', 'stepz', '3', '--out', str(tmp_path/'x'))
    assert r.returncode == 2
    assert "unknown parameter(s) ['stepz']" in r.stderr and 'preset' in r.stderr
    assert not (tmp_path/'x').exists()  # nothing ran, nothing written


@pytest.mark.parametrize('key,value,msg', [
    ('preset', 'nope', "unknown preset 'nope'"), ('lr', '-1', 'lr: expected > 0'), ('steps', '-5', 'steps: expected >= 1'),
    ('betas', '1', 'betas: expected a list'), ('steps', 'three', "got 'three'"),
    ('seeds', '[0, -1]', 'every value >= 0'), ('seeds', '[]', 'expected at least one seed'), ('seeds', '[0, 0]', 'expected distinct seeds'),
    ('seeds', '[0.5]', 'expected integers in [0, 2**32), got 0.5'), ('seeds', '[1e400]', 'got inf'),
    ('seeds', '[4294967296]', 'got 4294967296'),
    ('fresh', 'true', 'the runner sets fresh; use --fresh instead'),
    ('out_dir', '/x', 'the runner sets out_dir; use --out instead')])
def test_bad_parameter_fails_fast(tmp_path, key, value, msg):
    import time
    t0 = time.time()
    r = run_cli('run', 'vae', '-p', key, value, '--out', str(tmp_path/'x'))
    assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr
    assert time.time() - t0 < 10
    assert not (tmp_path/'x').exists()


def test_unknown_preset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        run_experiment('vae', {'preset': 'huge'}, out_dir=tmp_path/'x')


def test_out_inside_the_book_is_refused():
    nb = ROOT/'nbs'/'20_experiments'
    before = (nb/'vae.ipynb').read_bytes()
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '--out', '.', cwd=nb)
    assert r.returncode == 2 and "book's source folder" in r.stderr, r.stderr
    assert (nb/'vae.ipynb').read_bytes() == before


def test_another_runs_folder_is_refused_and_a_busy_one_too(tmp_path):
    import fcntl
    out = tmp_path/'run'
    out.mkdir()
    (out/'run.json').write_text(json.dumps({'experiment': 'vae', 'params': {'preset': 'smoke', 'seeds': [1]}}))
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'seeds', '[2]', '--out', str(out))
    assert r.returncode == 2 and 'holds another run' in r.stderr and '--force' in r.stderr, r.stderr
    (out/'run.json').write_text(json.dumps({'experiment': 'vae', 'params': {'preset': 'smoke', 'seeds': [2]}}))
    with open(out/'.lock', 'a+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write('424242')
        f.flush()
        r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'seeds', '[2]', '--out', str(out))
    assert r.returncode == 2 and 'another hybrid_gen run (process 424242)' in r.stderr, r.stderr


def _records(out):
    drop = ('train_seconds', 'job')
    return [{k: v for k, v in r.items() if k not in drop} for r in read_results(out)['records']]


def test_workers_do_not_change_results_and_a_killed_run_resumes(tmp_path):
    import signal, subprocess, sys, time
    one, two = tmp_path/'w1', tmp_path/'w2'
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'workers', '1', '--out', str(one))
    assert r.returncode == 0, r.stderr[-3000:]
    # a run killed with SIGTERM after its first finished job keeps that job; the same command then resumes
    cmd = [str(Path(sys.executable).parent/'hybrid_gen'), 'run', 'vae', '-p', 'preset', 'smoke', '-p', 'workers', '2',
           '--out', str(two)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(two.glob('jobs/*/record.json')) and time.time() - t0 < 300 and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    done = len(list(two.glob('jobs/*/record.json')))
    assert done >= 1
    if p.returncode != 0:  # (a run that finished before the signal arrived is fine too)
        assert p.returncode == 130 and 'stopped by SIGTERM' in err, err[-2000:]
        assert not (two/'vae.ipynb').exists() or (two/'vae.ipynb').stat().st_size > 0
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'workers', '2', '--out', str(two))
    assert r.returncode == 0, r.stderr[-3000:]
    nb = (two/'vae.ipynb').read_text()
    assert 'jobs already done (cached; ' in nb
    assert _records(one) == _records(two)


def _refused(r, *msgs):
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert all(m in r.stderr for m in msgs), r.stderr


def test_a_folder_of_the_users_files_is_refused_naming_one(tmp_path):
    out = tmp_path/'mine'
    out.mkdir()
    (out/'lrlivae_toy.ipynb').write_text('{"mine": 1}')
    (out/'fig2_toy.png').write_bytes(b'my figure')
    r = run_cli('run', 'lrlivae_toy', '-p', 'preset', 'smoke', '--out', str(out))
    _refused(r, str(out/'fig2_toy.png'), '(and 1 more)', '--force')
    assert (out/'lrlivae_toy.ipynb').read_text() == '{"mine": 1}' and (out/'fig2_toy.png').read_bytes() == b'my figure'
    assert sorted(p.name for p in out.iterdir()) == ['fig2_toy.png', 'lrlivae_toy.ipynb']


def test_another_checkouts_notebooks_are_refused_even_forced(tmp_path):
    other = tmp_path/'checkout'
    (other/'nbs'/'20_experiments').mkdir(parents=True)
    (other/'settings.ini').write_text((ROOT/'settings.ini').read_text())
    nb = other/'nbs'/'20_experiments'/'lrlivae_toy.ipynb'
    nb.write_bytes((ROOT/'nbs'/'20_experiments'/'lrlivae_toy.ipynb').read_bytes())
    before = nb.read_bytes()
    r = run_cli('run', 'lrlivae_toy', '-p', 'preset', 'smoke', '--out', str(nb.parent), '--force')
    _refused(r, "book's source folder")
    assert nb.read_bytes() == before


def test_a_bind_mount_of_the_book_is_refused(tmp_path):
    import subprocess
    m = tmp_path/'mnt'
    m.mkdir()
    if subprocess.run(['mount', '--bind', str(ROOT/'nbs'), str(m)], capture_output=True).returncode != 0:
        pytest.skip('bind mounts need root')
    try:
        r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '--out', str(m/'20_experiments'), '--force')
        _refused(r, "book's source folder")
    finally: subprocess.run(['umount', str(m)], check=True)


def test_out_inside_another_run_is_refused(tmp_path):
    run = tmp_path/'run'
    run.mkdir()
    (run/'run.json').write_text(json.dumps({'experiment': 'vae', 'params': {}, 'files': []}))
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '--out', str(run/'jobs'))
    _refused(r, 'inside the folder of another run', str(run))
    assert not (run/'jobs').exists()


def test_an_out_that_cannot_be_a_run_folder_is_one_line(tmp_path, monkeypatch):
    f = tmp_path/'afile'
    f.write_text('x')
    _refused(run_cli('run', 'vae', '--out', str(f)), 'is a file, not a folder')
    _refused(run_cli('run', 'vae', '--out', str(f/'run')), f'{f} is a file, not a folder')
    (tmp_path/'odd'/'run.json').mkdir(parents=True)
    _refused(run_cli('run', 'vae', '--out', str(tmp_path/'odd')), 'run.json is not a file')
    import contextlib, io
    from hybrid_gen import cli
    monkeypatch.setattr(os, 'access', lambda p, mode: False)  # read-only (as root, chmod would not stop a write)
    err = io.StringIO()
    with contextlib.redirect_stderr(err): rc = cli.main(['run', 'vae', '--out', str(tmp_path/'ro'/'run')])
    assert rc == 2 and '(read-only)' in err.getvalue() and err.getvalue().count('\n') == 1, err.getvalue()


def _tiny(cfg, seed, ctx):
    "A tiny fit: a small VAE, a few steps (the record: its last loss and a weight sum)."
    import torch
    from hybrid_gen.data.core import TensorData, Batches
    from hybrid_gen.models.vae import VAE
    from hybrid_gen.train import fit
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    m = VAE(x_shape=(1, 8, 8), z_dim=2, arch='mlp', hidden=(16,), beta=cfg['beta'])
    h = fit(m, Batches(TensorData(x=x), 16, seed=seed), steps=cfg['steps'], seed=seed, ckpt=ctx.ckpt,
            resume=ctx.ckpt is not None, progress=False)
    return {'loss': float(sum(v[-1] for v in h.losses.values())),
            'wsum': float(sum(p.double().sum() for p in m.parameters()))}


def test_a_library_change_reruns_a_job_and_reuse_stale_reuses_it(tmp_path, monkeypatch):
    from hybrid_gen import experiments as ex
    cfgs = [{'beta': 1.0, 'steps': 5}]
    one = ex.run_jobs(_tiny, cfgs, [0], tmp_path, workers=1, log=None)
    monkeypatch.setattr(ex, 'source_digest', lambda: 'the library, edited')
    again = ex.run_jobs(_tiny, cfgs, [0], tmp_path, workers=1, log=None)
    assert again[0]['job'] != one[0]['job'] and len(list(tmp_path.glob('jobs/*/record.json'))) == 2  # it re-ran
    assert 'stale' not in again[0] and {k: v for k, v in again[0].items() if k != 'job'} == \
        {k: v for k, v in one[0].items() if k != 'job'}
    monkeypatch.setattr(ex, 'source_digest', lambda: 'the library, edited again')
    msgs = []
    stale = ex.run_jobs(_tiny, cfgs, [0], tmp_path, workers=1, log=msgs.append, reuse_stale=True)
    assert len(list(tmp_path.glob('jobs/*/record.json'))) == 2  # nothing ran
    assert stale[0]['stale'] is True and {k: v for k, v in stale[0].items() if k not in ('job', 'stale')} == \
        {k: v for k, v in one[0].items() if k != 'job'}
    assert any(m.startswith('stale: beta=1.0, steps=5, seed 0') and 'library changed' in m for m in msgs), msgs
    monkeypatch.setenv('HYBRID_GEN_REUSE_STALE', '1')  # what `hybrid_gen run --reuse-stale` sets for the kernel
    assert ex.run_jobs(_tiny, cfgs, [0], tmp_path, workers=1, log=None)[0]['stale'] is True
    monkeypatch.setenv('HYBRID_GEN_REUSE_STALE', '0')
    assert 'stale' not in ex.run_jobs(_tiny, cfgs, [0], tmp_path, workers=1, log=None, code='an edited notebook')[0]


def test_reuse_stale_reaches_the_kernel(tmp_path, monkeypatch):
    from hybrid_gen import experiments as ex, cli
    seen = []
    def fake(nb, partial, run, out, *a):
        seen.append(os.environ.get('HYBRID_GEN_REUSE_STALE'))
        ex.write_results(out, 'vae', 'smoke', [0], [{'model': 'm', 'seed': 0, 'x': 1.}])
    monkeypatch.setattr(ex, '_execute', fake)
    monkeypatch.delenv('HYBRID_GEN_REUSE_STALE', raising=False)
    assert cli.main(['run', 'vae', '-p', 'preset', 'smoke', '--out', str(tmp_path/'a'), '--reuse-stale']) == 0
    assert cli.main(['run', 'vae', '-p', 'preset', 'smoke', '--out', str(tmp_path/'b')]) == 0
    assert seen == ['1', '0'] and 'HYBRID_GEN_REUSE_STALE' not in os.environ


DETERMINISM = """
import json, sys, torch
sys.path.insert(0, sys.argv[3])
from test_cli import _tiny
from hybrid_gen.experiments import run_jobs
if sys.argv[4] == 'busy':  # whatever ran before: other random draws, other thread counts, another fit
    torch.set_num_threads(2)
    torch.randn(1000) @ torch.randn(1000)
    _tiny({'beta': 2.0, 'steps': 3}, 9, type('C', (), {'ckpt': None})())
recs = run_jobs(_tiny, [{'beta': 1.0, 'steps': 20}, {'beta': 4.0, 'steps': 20}], [0, 1], sys.argv[1],
                workers=int(sys.argv[2]), log=None)
print(json.dumps(recs))
"""


def test_same_seed_same_record_in_fresh_processes(tmp_path):
    import subprocess, sys
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    runs = []
    for i, (workers, before) in enumerate([(1, 'none'), (2, 'busy')]):
        r = subprocess.run([sys.executable, '-c', DETERMINISM, str(tmp_path/f'r{i}'), str(workers),
                            str(Path(__file__).parent), before], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    a, b = runs
    assert [(r['beta'], r['seed']) for r in a] == [(r['beta'], r['seed']) for r in b] == \
        [(1.0, 0), (1.0, 1), (4.0, 0), (4.0, 1)]
    for ra, rb in zip(a, b):
        for k in ('loss', 'wsum'):
            assert ra[k] == pytest.approx(rb[k], rel=1e-9, abs=0), (k, ra, rb)
    assert a[0]['wsum'] != a[1]['wsum']  # (the seeds do differ)
