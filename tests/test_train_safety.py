"""Safety of `hybrid_gen.train`: `load` refuses a checkpoint whose stored arguments would build a huge model before
allocating it, and imports only allowed modules; resuming sees a change anywhere in the data; empty batches, a
directory as `ckpt` and a full disk are one-line errors; `History.images_seen` counts the examples actually drawn."""
import errno, json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest
import torch
from torch import nn
from hybrid_gen.data.core import TensorData, Batches
from hybrid_gen.models.core import Model
from hybrid_gen.train import fit, load, load_checkpoint, save_checkpoint, CheckpointError, _digest

ROOT = Path(__file__).resolve().parents[1]


def _edit(src, dst, **fields):
    "Checkpoint `src` with `fields` replaced (model_config entries merged), checksum recomputed."
    ck = torch.load(src, weights_only=True)
    cfg = fields.pop('model_config', None)
    ck.update(fields)
    if cfg: ck['model_config'] = {**ck['model_config'], **cfg}
    ck['checksum'] = _digest(ck)
    torch.save(ck, dst)
    return dst


HUGE = textwrap.dedent('''
    import json, resource, sys, time, torch
    from hybrid_gen.models.vae import VAE
    from hybrid_gen.train import load, save_checkpoint, _digest
    torch.set_num_threads(1)
    src, dst = sys.argv[1], sys.argv[2]
    big = dict(base_ch=2048, z_dim=2048)
    save_checkpoint(src, VAE(x_shape=(1, 8, 8), z_dim=2, base_ch=4), step=0)
    ck = torch.load(src, weights_only=True)
    ck['model_config'] = {**ck['model_config'], **big}
    ck['checksum'] = _digest(ck)
    torch.save(ck, dst)
    with torch.device('meta'): n = sum(p.numel() for p in VAE(x_shape=(1, 8, 8), **big).parameters())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.time()
    try:
        load(dst)
        msg = None
    except Exception as e: msg = f"{type(e).__name__}: {e}"
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    print(json.dumps(dict(msg=msg, grew_mb=grew / 1024, would_mb=4 * n / 2 ** 20, seconds=time.time() - t)))
''')


@pytest.mark.skipif(sys.platform != 'linux', reason='ru_maxrss in KiB is Linux')
def test_load_refuses_a_huge_config_before_allocating(tmp_path):
    (tmp_path / 'huge.py').write_text(HUGE)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    r = subprocess.run([sys.executable, str(tmp_path / 'huge.py'), str(tmp_path / 'a.pt'), str(tmp_path / 'b.pt')],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['would_mb'] > 500  # what building the config for real allocates
    assert out['msg'] is not None and out['msg'].startswith('CheckpointError: ')
    assert 'builds other shapes than it stores' in out['msg'] and '\n' not in out['msg']
    assert out['grew_mb'] < 100, out  # refused on the meta device: nothing of that size was allocated


class Table(Model):
    "A rebuilt (non-persistent) buffer whose size is a constructor argument."
    def __init__(self, n: int = 4):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.register_buffer('table', torch.zeros(n), persistent=False)


def test_load_refuses_a_config_far_larger_than_the_stored_tensors(tmp_path):
    save_checkpoint(tmp_path / 't.pt', Table(), step=0)
    assert load(tmp_path / 't.pt', modules=[__name__]).table.shape == (4,)
    big = _edit(tmp_path / 't.pt', tmp_path / 'big.pt', model_config={'n': 2 ** 36})  # 256 GiB of float32
    with pytest.raises(CheckpointError, match=r'builds 68,719,476,739 numbers but it stores 3 \(refused before'):
        load(big, modules=[__name__])


def test_load_imports_only_allowed_modules(tmp_path, capsys, monkeypatch):
    save_checkpoint(tmp_path / 't.pt', Table(n=2), step=0)
    zen = _edit(tmp_path / 't.pt', tmp_path / 'zen.pt', model_module='this', model_qualname='s', model_class='this.s')
    monkeypatch.delitem(sys.modules, 'this', raising=False)
    with pytest.raises(CheckpointError, match=r"model module 'this', which load imports only when asked to.*"
                                              r"load\(path, modules=\['this'\]\)"):
        load(zen)
    assert capsys.readouterr().out == '' and 'this' not in sys.modules  # refused before importing
    with pytest.raises(CheckpointError, match=f"model module '{__name__}'"):
        load(tmp_path / 't.pt')  # this test module is not hybrid_gen's: it must be named
    (tmp_path / 'extra_models_hg.py').write_text('from torch import nn\nfrom hybrid_gen.models.core import Model\n'
                                                 'class Tiny(Model):\n    def __init__(self, k: int = 3):\n'
                                                 '        super().__init__()\n        self.lin = nn.Linear(k, 1)\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import extra_models_hg
    save_checkpoint(tmp_path / 'tiny.pt', extra_models_hg.Tiny(k=5), step=0)
    monkeypatch.delitem(sys.modules, 'extra_models_hg')
    with pytest.raises(CheckpointError, match='extra_models_hg'):
        load(tmp_path / 'tiny.pt')
    assert 'extra_models_hg' not in sys.modules
    assert load(tmp_path / 'tiny.pt', modules='extra_models_hg').lin.in_features == 5


class Lin(nn.Module):
    "Regression on part 'labelled' (or a flat batch), a small penalty on part 'unlabelled' when there is one."
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(2, 1)
    def param_groups(self): return {'model': list(self.parameters())}
    def default_optim(self): return {'model': dict(name='sgd', lr=0.05)}
    def train_step(self, b, opt):
        lab = b.get('labelled', b)
        loss = (self.net(lab['x']).squeeze(1) - lab['y']).pow(2).mean()
        if 'unlabelled' in b: loss = loss + 1e-3 * self.net(b['unlabelled']['x']).pow(2).mean()
        opt.step('model', loss)
        return {'loss': loss.item()}


def _rows(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return TensorData(x=x, y=x.sum(1))


def test_resume_sees_a_row_outside_the_old_sample(tmp_path):
    d = _rows(4096)
    fit(Lin(), Batches(d, 64, seed=1), steps=3, ckpt=tmp_path / 'r.pt', progress=False)
    x = d.x.clone()
    x[1, 0] += 1e-3  # row 1: the 16 rows the old fingerprint hashed were 0, 273, 546, ...
    with pytest.raises(CheckpointError, match=r'was trained on other data.*data\.hash'):
        fit(Lin(), Batches(TensorData(x=x, y=d.y), 64, seed=1), steps=6, ckpt=tmp_path / 'r.pt', resume=True,
            progress=False)
    assert len(fit(Lin(), Batches(d, 64, seed=1), steps=6, ckpt=tmp_path / 'r.pt', resume=True, progress=False)) == 6


def test_resume_sees_the_second_part_of_a_later_batch_of_a_list(tmp_path):
    lab, unl = _rows(32), _rows(64, seed=1)
    parts = lambda u: [{'labelled': {'x': lab.x[i * 8:(i + 1) * 8], 'y': lab.y[i * 8:(i + 1) * 8]},
                        'unlabelled': {'x': u[i * 16:(i + 1) * 16]}} for i in range(4)]
    fit(Lin(), parts(unl.x), steps=2, ckpt=tmp_path / 'l.pt', progress=False)
    u = unl.x.clone()
    u[16 + 3, 1] = 7.  # batch 1, part 'unlabelled'
    with pytest.raises(CheckpointError, match=r"other data.*hash: '"):
        fit(Lin(), parts(u), steps=4, ckpt=tmp_path / 'l.pt', resume=True, progress=False)
    with pytest.warns(UserWarning, match="resume='force'"):  # the chapter's convention: forced, it says so
        fit(Lin(), parts(u), steps=4, ckpt=tmp_path / 'l.pt', resume='force', progress=False)


def test_ckpt_naming_a_directory(tmp_path):
    for kw in (dict(), dict(resume=True), dict(overwrite=True)):
        with pytest.raises(IsADirectoryError, match=r"is a directory; expected a file such as"):
            fit(Lin(), Batches(_rows(64), 8), steps=2, ckpt=tmp_path, progress=False, **kw)


def test_empty_batches_and_data(tmp_path):
    d = _rows(16)
    with pytest.raises(ValueError, match=r"fit: batch 1 is empty: 'x' has shape \(0, 2\)"):
        fit(Lin(), [{'x': d.x[:8], 'y': d.y[:8]}, {'x': d.x[:0], 'y': d.y[:0]}], steps=3, progress=False)
    with pytest.raises(ValueError, match=r"Batches: part 'data' is empty \(0 examples\)"):
        Batches(TensorData(x=torch.zeros(0, 2), y=torch.zeros(0)), 4)
    with pytest.raises(ValueError, match=r"fit: batch 0 is empty \(part 'unlabelled'\): 'x' has shape \(4, 0\)"):
        fit(Lin(), Batches({'labelled': (d, 4), 'unlabelled': (TensorData(x=torch.zeros(8, 0)), 4)}), steps=2,
            progress=False)


def test_a_full_disk_during_a_save(tmp_path, monkeypatch, capsys):
    def full(obj, f): raise OSError(errno.ENOSPC)  # what a write to a full disk can raise: nothing but the number
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(OSError) as e:
        fit(Lin(), Batches(_rows(64), 8), steps=4, ckpt=tmp_path / 'run.pt', ckpt_every=2, progress=False)
    msg = str(e.value)
    assert f"could not write the checkpoint {str(tmp_path / 'run.pt')!r}: the disk is full" in msg
    assert '\n' not in msg and e.value.errno == errno.ENOSPC and e.value.__cause__ is None
    assert not list(tmp_path.iterdir())  # no half-written file left


def _two_parts(**kw):
    lab, unl = _rows(50), _rows(100, seed=1)
    return Batches({'labelled': (lab, 16), 'unlabelled': (TensorData(x=unl.x), 24)}, seed=3, **kw)


def test_images_seen_counts_what_was_drawn(tmp_path):
    steps = 17
    drawn = {k: sum(len(_two_parts(drop_last=False).indices(s, k)) for s in range(steps))
             for k in ('labelled', 'unlabelled')}
    assert drawn == {'labelled': 16 * 13 + 2 * 4, 'unlabelled': 24 * 14 + 4 * 3}  # short last batches included
    h = fit(Lin(), _two_parts(drop_last=False), steps=steps, progress=False)
    assert h.images_seen == drawn
    fit(Lin(), _two_parts(drop_last=False), steps=6, ckpt=tmp_path / 'b.pt', progress=False)
    resumed = fit(Lin(), _two_parts(drop_last=False), steps=steps, ckpt=tmp_path / 'b.pt', resume=True,
                  progress=False)
    assert resumed.images_seen == drawn and resumed.losses == h.losses
    assert load_checkpoint(tmp_path / 'b.pt')['history']['images_seen'] == drawn
    flat = fit(Lin(), Batches(_rows(40), 16), steps=5, progress=False)  # drop_last: 2 batches of 16 per epoch
    assert flat.images_seen == {'data': 5 * 16}
