"""Reliability of `fit`'s checkpoints: a run SIGKILLed mid-way (even during a save) or SIGTERMed and resumed from its
checkpoint ends exactly where an uninterrupted run ends; a corrupted, truncated or foreign checkpoint is a clear error,
never a silent restart; checkpoints rebuild their model (`load`); resuming refuses what it cannot honour; an existing
checkpoint is never overwritten by accident; `fit` trains from a DataLoader."""
import os, signal, subprocess, sys, textwrap
from pathlib import Path
import pytest
import torch

MODEL = textwrap.dedent('''
    import os, signal, sys, torch
    from torch import nn
    import torch.nn.functional as F
    from hybrid_gen.data.core import TensorData, Batches
    from hybrid_gen.train import fit
    torch.set_num_threads(1)

    class NoisyGAN(nn.Module):
        "1-D GAN with fresh noise and dropout every step: exact resume needs the RNG state, Adam moments and step."
        def __init__(self):
            super().__init__()
            self.gen = nn.Linear(1, 1)
            self.disc = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(16, 1))
        def param_groups(self): return {'disc': list(self.disc.parameters()), 'gen': list(self.gen.parameters())}
        def default_optim(self): return {'disc': dict(name='adam', lr=2e-3, betas=(0.5, 0.999)),
                                         'gen': dict(name='rmsprop', lr=1e-3)}
        def train_step(self, b, opt):
            x = b['x']
            one, zero = torch.ones_like(x), torch.zeros_like(x)
            ld = F.binary_cross_entropy_with_logits(self.disc(x), one) + \\
                 F.binary_cross_entropy_with_logits(self.disc(self.gen(torch.randn_like(x)).detach()), zero)
            opt.step('disc', ld)
            lg = F.binary_cross_entropy_with_logits(self.disc(self.gen(torch.randn_like(x))), one)
            opt.step('gen', lg)
            return {'disc': ld.item(), 'gen': lg.item()}

    class OtherModel(NoisyGAN): pass

    def data():
        g = torch.Generator().manual_seed(0)
        return Batches(TensorData(x=3 + 0.5 * torch.randn(300, 1, generator=g)), 32, seed=2)

    if __name__ == '__main__':
        out, steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        torch.manual_seed(int(sys.argv[4]))  # initial weights: irrelevant when resuming
        sig = getattr(signal, sys.argv[5])
        model = NoisyGAN()
        def killer(state):  # SIGKILL: a crash (no cleanup, no final checkpoint); SIGTERM: a scheduler stopping the job
            if state.step == kill_at: os.kill(os.getpid(), sig)
        h = fit(model, data(), steps=steps, seed=5, ckpt=os.path.join(out, 'run.pt'), ckpt_every=20, resume=True,
                progress=False, callbacks=[killer] if kill_at > 0 else [])
        torch.save({'params': model.state_dict(), 'gen': torch.tensor(h.losses['gen'])}, os.path.join(out, 'final.pt'))
''')

N = 60

def _run(d, steps, kill_at=0, init_seed=0, sig='SIGKILL'):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    env.pop('WORLD_SIZE', None)
    return subprocess.run([sys.executable, str(d / 'noisy.py'), str(d), str(steps), str(kill_at), str(init_seed), sig],
                          env=env, capture_output=True, text=True, timeout=120)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    full, crash = tmp_path_factory.mktemp('full'), tmp_path_factory.mktemp('crash')
    for d in (full, crash): (d / 'noisy.py').write_text(MODEL)
    r = _run(full, N)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(crash, N, kill_at=N // 2 + 5)  # step 35: 15 steps after the last checkpoint (step 20)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert not (crash / 'final.pt').exists()
    return full, crash

def test_killed_run_resumes_exactly(runs):
    full, crash = runs
    from hybrid_gen.train import load_checkpoint
    assert load_checkpoint(crash / 'run.pt')['step'] == 20  # the last checkpoint before the kill at step 35
    assert not [f for f in os.listdir(crash) if '.tmp' in f]
    from hybrid_gen import files
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    # what a SIGKILL during a save leaves: hybrid_gen.files.atomic_path's name, with the pid of a writer that ended
    stale = crash / f'.run.pt.atomic-{int(dead.stdout)}-{files._HOST}-x7q2kd9a.tmp.pt'
    stale.write_bytes(b'\0' * 4096)
    r = _run(crash, N, init_seed=99)  # a new process, differently initialised model: resumes from step 20
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(full / 'final.pt', weights_only=True), torch.load(crash / 'final.pt', weights_only=True)
    for k in a['params']: assert torch.equal(a['params'][k], b['params'][k]), k
    assert len(b['gen']) == N and torch.equal(a['gen'], b['gen'])  # history: 20 restored + 40 new steps, identical
    assert load_checkpoint(crash / 'run.pt')['step'] == N
    assert not stale.exists() and not [f for f in os.listdir(crash) if '.tmp' in f]  # the leftover was removed


def test_sigterm_saves_a_checkpoint_and_resumes_exactly(runs, tmp_path):
    full, _ = runs
    (tmp_path / 'noisy.py').write_text(MODEL)
    r = _run(tmp_path, N, kill_at=27, sig='SIGTERM')  # 7 steps after the periodic checkpoint of step 20
    assert r.returncode == 143, (r.returncode, r.stderr[-2000:])  # hybrid_gen.train.Terminated: 128 + SIGTERM
    assert 'SIGTERM received' in r.stderr and 'checkpoint saved' in r.stderr
    from hybrid_gen.train import load_checkpoint
    assert load_checkpoint(tmp_path / 'run.pt')['step'] == 27  # the step in progress finished, then saved
    assert not (tmp_path / 'final.pt').exists()
    r = _run(tmp_path, N, init_seed=99)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(full / 'final.pt', weights_only=True), torch.load(tmp_path / 'final.pt', weights_only=True)
    for k in a['params']: assert torch.equal(a['params'][k], b['params'][k]), k
    assert torch.equal(a['gen'], b['gen'])

def test_corrupted_checkpoint_is_a_clear_error(runs, tmp_path):
    full, _ = runs
    raw = (full / 'run.pt').read_bytes()
    (tmp_path / 'noisy.py').write_text(MODEL)
    (tmp_path / 'run.pt').write_bytes(raw[: len(raw) // 3])  # truncated, as by a disk filling up
    r = _run(tmp_path, N)
    assert r.returncode == 1 and 'CheckpointError' in r.stderr and 'not a readable checkpoint' in r.stderr
    assert str(tmp_path / 'run.pt') in r.stderr  # names the file
    assert not (tmp_path / 'final.pt').exists()  # no silent restart
    # bit rot inside the weights: the zip container stays valid, so torch.load alone would return wrong weights
    w = torch.load(full / 'run.pt', weights_only=True)['model']['disc.0.weight']
    i = raw.find(w.numpy().tobytes())
    assert i > 0
    rot = bytearray(raw)
    rot[i + 5] ^= 0x10
    (tmp_path / 'run.pt').write_bytes(bytes(rot))
    assert not torch.equal(torch.load(tmp_path / 'run.pt', weights_only=True)['model']['disc.0.weight'], w)
    r = _run(tmp_path, N)
    assert r.returncode == 1 and 'CheckpointError' in r.stderr and 'is corrupt' in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / 'final.pt').exists()

def test_foreign_checkpoint_is_a_clear_error(runs, tmp_path):
    full, _ = runs
    sys.path.insert(0, str(tmp_path))
    (tmp_path / 'noisy_mod.py').write_text(MODEL)
    try:
        import noisy_mod
        from hybrid_gen.train import load_checkpoint, CheckpointError, build_optimizers, _digest
        with pytest.raises(CheckpointError, match=r"holds a __main__\.NoisyGAN, expected a noisy_mod\.OtherModel"):
            load_checkpoint(full / 'run.pt', noisy_mod.OtherModel())
        # same class name, other parameter names: rename the class to match and change the architecture
        m = noisy_mod.NoisyGAN()
        m.extra = torch.nn.Linear(1, 1)
        ck = torch.load(full / 'run.pt', weights_only=True)
        ck['model_class'] = 'noisy_mod.NoisyGAN'
        ck['checksum'] = _digest(ck)  # a well-formed checkpoint, not a corrupt one
        torch.save(ck, tmp_path / 'renamed.pt')
        with pytest.raises(CheckpointError, match=r"parameter names differ.*missing \['extra.weight', 'extra.bias'\]"):
            load_checkpoint(tmp_path / 'renamed.pt', m)
        ok = noisy_mod.NoisyGAN()
        opt = build_optimizers(ok)
        assert load_checkpoint(tmp_path / 'renamed.pt', ok, opt)['step'] == N  # the matching model loads
    finally: sys.path.remove(str(tmp_path))


# ---- in-process: a small model on the common base class, trained from a DataLoader ----
from torch import nn
from torch.utils.data import DataLoader, Dataset
from hybrid_gen.models.core import Model, image_encoder, image_decoder
from hybrid_gen.train import fit, load, load_checkpoint, CheckpointError


class TinyAE(Model):
    "A 4x4 autoencoder; `encoder`: images (B, 1, 4, 4) -> codes (B, z_dim)."
    networks = ('encoder',)

    def __init__(self, x_shape=(1, 4, 4), z_dim=2, *, encoder=None):
        super().__init__()
        self.x_shape, self.z_dim = tuple(x_shape), z_dim
        self.encoder = encoder or image_encoder(x_shape, z_dim, arch='mlp', base_ch=4)
        self.decoder = image_decoder(z_dim, x_shape, arch='mlp', base_ch=4)

    def forward(self, batch):
        return {'loss': (torch.sigmoid(self.decoder(self.encoder(batch['x']))) - batch['x']).pow(2).mean()}

    def default_optim(self):
        return {'model': dict(name='adam', lr=1e-2)}


class Images(Dataset):
    "Items are dicts, so the default collate yields batch dicts."
    def __init__(self, n=96):
        self.x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {'x': self.x[i]}


def _loader():
    return DataLoader(Images(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyAE(**kw)


def test_dataloader_training_resume_and_load(tmp_path):
    full = _model()
    h_full = fit(full, _loader(), steps=30, progress=False)  # 6 batches per epoch: 5 epochs
    assert h_full.mean('loss', 5) < h_full.losses['loss'][0]  # it learned
    fit(_model(), _loader(), steps=13, ckpt=tmp_path / 'ae.pt', progress=False)
    res = _model(seed=1)
    h = fit(res, _loader(), steps=30, ckpt=tmp_path / 'ae.pt', resume=True, progress=False)  # replays 13 batches
    assert h.losses == h_full.losses
    assert all(torch.equal(a, b) for a, b in zip(res.parameters(), full.parameters()))
    back = load(tmp_path / 'ae.pt', modules=[__name__])  # rebuilt from the checkpoint alone (this module allowed)
    assert type(back) is TinyAE and back.z_dim == 2 and not back.training
    assert all(torch.equal(a, b) for a, b in zip(back.parameters(), full.parameters()))
    back, opt = load(tmp_path / 'ae.pt', optimizers=True, modules=[__name__])
    assert opt.optimizers['model'].state_dict()['state'][0]['step'].item() == 30


def test_load_asks_for_custom_networks(tmp_path):
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    fit(_model(encoder=enc), _loader(), steps=3, ckpt=tmp_path / 'c.pt', progress=False)
    with pytest.raises(TypeError, match=r"custom network\(s\) \['encoder'\].*load\(path, encoder=\.\.\.\)"):
        load(tmp_path / 'c.pt', modules=[__name__])
    back = load(tmp_path / 'c.pt', modules=[__name__], encoder=nn.Sequential(nn.Flatten(), nn.Linear(16, 2)))
    assert torch.equal(back.encoder[1].weight, enc[1].weight.cpu())


def test_resume_applies_a_new_lr_and_refuses_a_new_optimizer(tmp_path):
    fit(_model(), _loader(), steps=5, ckpt=tmp_path / 'r.pt', progress=False)
    lrs = []
    with pytest.warns(UserWarning, match=r"group 'model': lr 0.01 -> 0.5"):
        fit(_model(), _loader(), steps=7, ckpt=tmp_path / 'r.pt', resume=True, progress=False,
            optim={'model': dict(lr=0.5)}, callbacks=[lambda s: lrs.append(s.opt.lr('model'))])
    assert lrs == [0.5, 0.5]
    with pytest.raises(CheckpointError, match=r"optimizer torch.optim.adam.Adam -> torch.optim.sgd.SGD"):
        fit(_model(), _loader(), steps=9, ckpt=tmp_path / 'r.pt', resume=True, progress=False,
            optim={'model': dict(name='sgd', lr=0.1, momentum=0.9)})  # before: a bare KeyError: 'momentum'
    with pytest.raises(CheckpointError, match=r"first batch x: 'torch.float32 \(16, 1, 4, 4\)' -> 'torch.float32 \(8, 1, 4, 4\)'"):
        fit(_model(), DataLoader(Images(), batch_size=8), steps=9, ckpt=tmp_path / 'r.pt', resume=True, progress=False)
    assert load_checkpoint(tmp_path / 'r.pt')['step'] == 7


def test_existing_checkpoint_is_never_overwritten_by_accident(tmp_path):
    fit(_model(), _loader(), steps=8, ckpt=tmp_path / 'run.pt', progress=False)
    with pytest.raises(FileExistsError, match='already exists; pass resume=True'):
        fit(_model(), _loader(), steps=2, ckpt=tmp_path / 'run.pt', progress=False)
    assert load_checkpoint(tmp_path / 'run.pt')['step'] == 8
    fit(_model(), _loader(), steps=2, ckpt=tmp_path / 'run.pt', overwrite=True, progress=False)
    assert load_checkpoint(tmp_path / 'run.pt')['step'] == 2


def test_unwritable_checkpoint_fails_before_the_first_step(tmp_path):
    (tmp_path / 'file').write_text('a file, not a folder')
    m, steps = _model(), []
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(OSError, match='cannot write the checkpoint'):
        fit(m, _loader(), steps=5, ckpt=tmp_path / 'file' / 'run.pt', progress=False, callbacks=[steps.append])
    assert steps == [] and all(torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_keyboard_interrupt_leaves_a_checkpoint(tmp_path):
    def ctrl_c(state):
        if state.step == 6: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _loader(), steps=20, ckpt=tmp_path / 'kb.pt', progress=False, callbacks=[ctrl_c])
    ck = load_checkpoint(tmp_path / 'kb.pt')
    assert ck['step'] == 6 and len(ck['history']['steps']) == 6
