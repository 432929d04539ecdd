"""`fit` under torchrun: two gloo processes on the CPU end where one process with the same global batch ends.

The model is a tiny two-player game (a 1-D GAN with the generator's noise stored in the data set, so the run is
deterministic given the batches) trained with two Adam optimizers stepped in turn, i.e. the adversarial path of
`fit`: per-group gradient averaging across processes, loss averaging, rank-0-only checkpoints.
"""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest
import torch

MODEL = textwrap.dedent('''
    import sys, torch
    from torch import nn
    import torch.nn.functional as F
    from hybrid_gen.data.core import TensorData, Batches
    from hybrid_gen.train import fit
    torch.set_num_threads(1)

    class TwoPlayer(nn.Module):
        "1-D GAN whose noise comes with the batch (deterministic given the batch)."
        def __init__(self):
            super().__init__()
            self.gen = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
            self.disc = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        def param_groups(self): return {'disc': list(self.disc.parameters()), 'gen': list(self.gen.parameters())}
        def default_optim(self): return {'disc': dict(name='adam', lr=1e-2, betas=(0.5, 0.999)),
                                         'gen': dict(name='adam', lr=1e-2, betas=(0.5, 0.999))}
        def train_step(self, b, opt):
            x, z = b['x'], b['z']; one, zero = torch.ones_like(x), torch.zeros_like(x)
            ld = F.binary_cross_entropy_with_logits(self.disc(x), one) + \\
                 F.binary_cross_entropy_with_logits(self.disc(self.gen(z).detach()), zero)
            opt.step('disc', ld)
            lg = F.binary_cross_entropy_with_logits(self.disc(self.gen(z)), one)
            opt.step('gen', lg)
            return {'disc': ld.item(), 'gen': lg.item()}

    class WithBatchNorm(nn.Module):
        "Regression through a BatchNorm layer: per-process batch statistics differ, running statistics must not."
        def __init__(self):
            super().__init__(); self.net = nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        def param_groups(self): return {'model': list(self.parameters())}
        def default_optim(self): return {'model': dict(name='sgd', lr=0.05)}
        def train_step(self, b, opt):
            loss = (self.net(b['x']) - b['x'] ** 2).pow(2).mean(); opt.step('model', loss); return {'mse': loss.item()}

    def run_bn(steps):
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(1); model = WithBatchNorm()
        fit(model, Batches(TensorData(x=torch.randn(256, 1, generator=g)), 32), steps=steps, progress=False)
        return model

    def run(steps, ckpt=None):
        g = torch.Generator().manual_seed(0)
        data = TensorData(x=3 + 0.5 * torch.randn(512, 1, generator=g), z=torch.randn(512, 1, generator=g))
        torch.manual_seed(1); model = TwoPlayer()  # every process builds the same model (fit also broadcasts rank 0's)
        h = fit(model, Batches(data, 32, seed=0), steps=steps, seed=0, progress=False, ckpt=ckpt,
                ckpt_every=10 if ckpt else None)
        return model, h
''')

WORKER = textwrap.dedent('''
    import json, os, sys, torch
    sys.path.insert(0, os.path.dirname(__file__))
    from ddp_model import run
    out = sys.argv[1]
    model, h = run(40, ckpt=os.path.join(out, 'ddp.pt'))
    rank = int(os.environ['RANK'])
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(out, f'params{rank}.pt'))
    json.dump({'world': int(os.environ['WORLD_SIZE']), 'losses': h.losses, 'steps': h.steps},
              open(os.path.join(out, f'hist{rank}.json'), 'w'))
    from ddp_model import run_bn
    torch.save(run_bn(8).state_dict(), os.path.join(out, f'bn{rank}.pt'))
''')

def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env.update(OMP_NUM_THREADS='1', PYTHONPATH=str(Path(__file__).resolve().parents[1]), CUDA_VISIBLE_DEVICES='')
    return env

@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory):
    d = tmp_path_factory.mktemp('ddp')
    (d / 'ddp_model.py').write_text(MODEL); (d / 'worker.py').write_text(WORKER)
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        str(d / 'worker.py'), str(d)], env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return d

def _single(d, steps):
    "The same run in one process (this one), on the same global batches."
    sys.path.insert(0, str(d))
    try:
        from ddp_model import run
        return run(steps)
    finally: sys.path.remove(str(d))

def test_two_gloo_processes_match_one_process(ddp_run):
    d = ddp_run
    p0, p1 = torch.load(d / 'params0.pt', weights_only=True), torch.load(d / 'params1.pt', weights_only=True)
    for k in p0: assert torch.equal(p0[k], p1[k]), f"replicas diverged on {k}"  # identical replicas
    model, h = _single(d, 40)
    ref = model.state_dict()
    assert set(ref) == set(p0)
    diff = max((p0[k] - ref[k]).abs().max().item() for k in ref)
    moved = min((p0[k] - v).abs().max().item() for k, v in _initial(d).items())
    assert diff < 1e-5, f"2-process and 1-process parameters differ by {diff}"
    assert moved > 1e-3, "the run did not train"  # the comparison is not between untouched weights
    h0, h1 = json.load(open(d / 'hist0.json')), json.load(open(d / 'hist1.json'))
    assert h0['world'] == 2 and h0 == h1  # both processes log the global-batch losses
    for k in ('disc', 'gen'):
        assert len(h0['losses'][k]) == 40
        assert max(abs(a - b) for a, b in zip(h0['losses'][k], h.losses[k])) < 1e-5

def _initial(d):
    sys.path.insert(0, str(d))
    try:
        from ddp_model import TwoPlayer
        torch.manual_seed(1); return TwoPlayer().state_dict()
    finally: sys.path.remove(str(d))

def test_rank0_checkpoint_holds_every_rank(ddp_run):
    from hybrid_gen.train import load_checkpoint
    ck = load_checkpoint(ddp_run / 'ddp.pt')
    assert ck['step'] == 40 and len(ck['rng']) == 2  # RNG state of both processes
    p0 = torch.load(ddp_run / 'params0.pt', weights_only=True)
    for k, v in p0.items(): assert torch.equal(ck['model'][k], v)
    from hybrid_gen.files import atomic_temporaries
    assert atomic_temporaries(ddp_run / 'ddp.pt') == []   # no temporary of the checkpoint's writes is left

def test_batchnorm_buffers_stay_identical(ddp_run):
    b0, b1 = torch.load(ddp_run / 'bn0.pt', weights_only=True), torch.load(ddp_run / 'bn1.pt', weights_only=True)
    for k in b0: assert torch.equal(b0[k], b1[k]), f"replicas diverged on {k}"
    assert b0['net.1.running_mean'].abs().max() > 1e-3 and b0['net.1.num_batches_tracked'] == 8  # they did update
