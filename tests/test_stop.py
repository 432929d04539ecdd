"""Stopping `hybrid_gen run` keeps the work: SIGTERM or SIGINT, sent to the command alone or to its whole process group
(a terminal's Ctrl-C), leaves every running job's checkpoint of its last finished step, and the same command resumes
from it. One chain of four stopped runs into one folder, each a few seconds of training on the toy experiment."""
import json, os, re, signal, subprocess, sys, time
from pathlib import Path
import pytest
from hybrid_gen.train import load_checkpoint

EXE = str(Path(sys.executable).parent/'hybrid_gen')
ARGS = ['run', 'lrlivae_toy', '-p', 'preset', 'smoke', '-p', 'seeds', '[0]', '-p', 'steps', '1000000',
        '-p', 'workers', '2']
RESUMED = re.compile(r'resuming from ckpt\.pt at step (\d+)')


def _wait(cond, timeout, p, what):
    t0 = time.time()
    while not cond():
        assert p.poll() is None, f"the run ended before {what}: {p.communicate()[1][-3000:]}"
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)


def _log(d): return (d/'log.txt').read_text() if (d/'log.txt').exists() else ''


def _started(out):
    "Job folder -> how many times its job started, for the toy's training jobs (the others finish at once)."
    return {d: _log(d).count(': started') for d in (out/'jobs').glob('*') if (d/'config.json').exists()
            and json.loads((d/'config.json').read_text())['cfg'].get('model') in ('Lr-LiVAE', 'cVAE-GAN')}


def _stop_once(out, sig, target, before):
    "Start the run, let it train a few seconds, stop it; returns {job folder: (checkpoint step, starts)}."
    p = subprocess.Popen([EXE, *ARGS, '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    try:
        now = lambda: [d for d, n in _started(out).items() if n > before.get(d, (0, 0))[1]]
        _wait(lambda: (out/'jobs').is_dir() and len(now()) >= 2, 300, p, 'two training jobs')
        running = now()
        for d in running:  # a resumed job says so in its log, from the step it saved
            if d in before:
                _wait(lambda: len(RESUMED.findall(_log(d))) >= before[d][1], 60, p, 'the resume line')
                assert int(RESUMED.findall(_log(d))[-1]) == before[d][0] > 0
        time.sleep(3)  # a few seconds of training
        if target == 'group': os.killpg(p.pid, sig)
        else: p.send_signal(sig)
        _, err = p.communicate(timeout=200)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err[-3000:]
    assert 'Traceback' not in err and 'DeadKernelError' not in err, err[-3000:]
    steps = {}
    for d in running:
        assert (d/'ckpt.pt').exists(), f"no checkpoint for {d.name}:\n{_log(d)[-2000:]}\n{err[-2000:]}"
        step = load_checkpoint(d/'ckpt.pt')['step']
        assert step > before.get(d, (0,))[0], (d.name, step, before.get(d))
        assert f'checkpoint at step {step}' in err, err[-2000:]  # the command says where each job stopped
        steps[d] = (step, _started(out)[d])
    return steps


def test_a_stopped_run_keeps_its_jobs_and_resumes(tmp_path):
    out = tmp_path/'run'
    steps = {}
    for sig, target in [(signal.SIGTERM, 'cli'), (signal.SIGINT, 'group'), (signal.SIGINT, 'cli'),
                        (signal.SIGTERM, 'group')]:
        steps = _stop_once(out, sig, target, steps)
    assert not any((d/'record.json').exists() for d in steps)
