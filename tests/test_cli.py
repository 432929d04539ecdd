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
    ps = experiment_params(name)
    assert list(ps)[:5] == ['preset', 'seed', 'device', 'data_dir', 'out_dir']


def test_run_vae_smoke_end_to_end(tmp_path):
    out = tmp_path/'vae-run'
    r = run_cli('run', 'vae', '-p', 'preset', 'smoke', '-p', 'seed', '3', '--out', str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = read_results(out)
    assert (res['experiment'], res['preset'], res['seed']) == ('vae', 'smoke', 3)
    assert res['records'] and all('model' in rec for rec in res['records'])
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


def test_bad_parameter_value_is_a_clear_error(tmp_path):
    r = run_cli('run', 'vae', '-p', 'seed', 'three', '--out', str(tmp_path/'x'))
    assert r.returncode == 2 and "got 'three'" in r.stderr


def test_unknown_preset_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="unknown preset 'huge'"):
        run_experiment('vae', {'preset': 'huge'}, out_dir=tmp_path/'x')
