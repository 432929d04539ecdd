"""Reliability of `fit`'s checkpoints: a run SIGKILLed mid-way and resumed from its last checkpoint ends exactly where an
uninterrupted run ends; a corrupted, truncated or foreign checkpoint is a clear error, never a silent restart."""
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
            x = b['x']; one, zero = torch.ones_like(x), torch.zeros_like(x)
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
        model = NoisyGAN()
        def killer(state):  # simulate a crash (SIGKILL: no cleanup, no final checkpoint)
            if state.step == kill_at: os.kill(os.getpid(), signal.SIGKILL)
        h = fit(model, data(), steps=steps, seed=5, ckpt=os.path.join(out, 'run.pt'), ckpt_every=20, resume=True,
                progress=False, callbacks=[killer] if kill_at > 0 else [])
        torch.save({'params': model.state_dict(), 'gen': torch.tensor(h.losses['gen'])}, os.path.join(out, 'final.pt'))
''')

N = 60

def _run(d, steps, kill_at=0, init_seed=0):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    env.pop('WORLD_SIZE', None)
    return subprocess.run([sys.executable, str(d / 'noisy.py'), str(d), str(steps), str(kill_at), str(init_seed)],
                          env=env, capture_output=True, text=True, timeout=120)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    full, crash = tmp_path_factory.mktemp('full'), tmp_path_factory.mktemp('crash')
    for d in (full, crash): (d / 'noisy.py').write_text(MODEL)
    r = _run(full, N); assert r.returncode == 0, r.stderr[-2000:]
    r = _run(crash, N, kill_at=N // 2 + 5)  # step 35: 15 steps after the last checkpoint (step 20)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert not (crash / 'final.pt').exists()
    return full, crash

def test_killed_run_resumes_exactly(runs):
    full, crash = runs
    from hybrid_gen.train import load_checkpoint
    assert load_checkpoint(crash / 'run.pt')['step'] == 20  # the last checkpoint before the kill at step 35
    assert not [f for f in os.listdir(crash) if f.endswith('.tmp')]
    r = _run(crash, N, init_seed=99)  # a new process, differently initialised model: resumes from step 20
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(full / 'final.pt', weights_only=True), torch.load(crash / 'final.pt', weights_only=True)
    for k in a['params']: assert torch.equal(a['params'][k], b['params'][k]), k
    assert len(b['gen']) == N and torch.equal(a['gen'], b['gen'])  # history: 20 restored + 40 new steps, identical
    assert load_checkpoint(crash / 'run.pt')['step'] == N

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
    i = raw.find(w.numpy().tobytes()); assert i > 0
    rot = bytearray(raw); rot[i + 5] ^= 0x10
    (tmp_path / 'run.pt').write_bytes(bytes(rot))
    assert not torch.equal(torch.load(tmp_path / 'run.pt', weights_only=True)['model']['disc.0.weight'], w)
    r = _run(tmp_path, N)
    assert r.returncode == 1 and 'CheckpointError' in r.stderr and 'is corrupt' in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / 'final.pt').exists()

def test_foreign_checkpoint_is_a_clear_error(runs, tmp_path):
    full, _ = runs
    sys.path.insert(0, str(tmp_path)); (tmp_path / 'noisy_mod.py').write_text(MODEL)
    try:
        import noisy_mod
        from hybrid_gen.train import load_checkpoint, CheckpointError, build_optimizers, _digest
        with pytest.raises(CheckpointError, match=r"holds a __main__\.NoisyGAN, expected a noisy_mod\.OtherModel"):
            load_checkpoint(full / 'run.pt', noisy_mod.OtherModel())
        # same class name, other parameter names: rename the class to match and change the architecture
        m = noisy_mod.NoisyGAN(); m.extra = torch.nn.Linear(1, 1)
        ck = torch.load(full / 'run.pt', weights_only=True); ck['model_class'] = 'noisy_mod.NoisyGAN'
        ck['checksum'] = _digest(ck)  # a well-formed checkpoint, not a corrupt one
        torch.save(ck, tmp_path / 'renamed.pt')
        with pytest.raises(CheckpointError, match=r"parameter names differ.*missing \['extra.weight', 'extra.bias'\]"):
            load_checkpoint(tmp_path / 'renamed.pt', m)
        ok = noisy_mod.NoisyGAN(); opt = build_optimizers(ok)
        assert load_checkpoint(tmp_path / 'renamed.pt', ok, opt)['step'] == N  # the matching model loads
    finally: sys.path.remove(str(tmp_path))
