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
    assert list(ps)[2:5] == ['device', 'data_dir', 'out_dir']
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
    ('betas', '1', 'betas: expected a list'), ('steps', 'three', "got 'three'"), ('seeds', '[0, -1]', 'every value >= 0')])
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
        assert p.returncode == 130 and 'interrupted' in err, err[-2000:]
        assert not (two/'vae.ipynb').exists() or (two/'vae.ipynb').stat().st_size > 0
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'workers', '2', '--out', str(two))
    assert r.returncode == 0, r.stderr[-3000:]
    nb = (two/'vae.ipynb').read_text()
    assert 'jobs already done (cached; ' in nb
    assert _records(one) == _records(two)
