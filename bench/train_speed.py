"""Training throughput, measured side by side in one run: `hybrid_gen.train.fit` vs a bare PyTorch loop vs Pythae.

    python bench/train_speed.py [--steps conv=40,mlp=400] [--repeats 3] [--device cpu] [--compile] [--no-pythae]
                                [--sizes 10000,30000,100000] [--scale-models mlp,conv]

Two models, batch 128, Adam lr 1e-3, identical networks and loss (Bernoulli likelihood, sum over pixels, mean over batch):
  conv: `VAE((3, 32, 32), 16, arch='conv')` on 32x32 styled digits;
  mlp:  `VAE((1, 8, 8), 8, arch='mlp', hidden=(128, 64))` on the raw 8x8 digits (per-step overhead dominates).
Contenders, each timed over the same number of steps after warm-up steps that are not timed:
  fit            hybrid_gen.train.fit(model, Batches(data, 128), steps=...) (progress bar off); the timed window runs
                 from the end of the warm-up steps to the last step, read with fit's `callbacks` hook
  bare           the same forward/backward/step written by hand: the training data are one tensor on the device,
                 each step gathers 128 rows by a random permutation, computes the same loss, zero_grad/backward/step
  bare+contract  the bare loop calling `model.train_step(batch, opt)` with fit's `Optimizers` handle: the model
                 contract (`.item()`s, `opt.step` checks) without fit's loop (batch sampler, history, callbacks)
  pythae         Pythae's BaseTrainer with a pythae VAE wrapping the same encoder/decoder (its DataLoader collates
                 samples one by one); timed per epoch with its callbacks, first epoch excluded. Needs `pip install pythae`
                 (or PYTHAE_PATH=folder of a `pip install --target` copy); skipped with a note if unavailable.
  *compile       (with --compile) torch.compile'd sub-networks for fit (fit(compile=True)) and the bare loop.
Each figure is the median samples/s over `--repeats` runs; ratios are against `bare` of the same model. Rates are given
by the wall clock and by this process's CPU time: on a shared CPU the wall clock mostly measures waiting for a core, while
CPU time (with one thread: OMP_NUM_THREADS=1) measures the work each contender does. On a GPU read the wall clock.
Then the time per sample of `fit` as the training set grows (data on the device, no per-sample collation).
Prints Markdown tables.
"""
import argparse, os, sys, tempfile, time, statistics, warnings, contextlib, io, logging
from pathlib import Path
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hybrid_gen.models.vae import VAE
from hybrid_gen.data.core import TensorData, Batches
from hybrid_gen.train import fit, Optimizers, pick_device

BS = 128

def make_data(kind, n):
    "Training images for `kind` ('conv': 32x32 styled digits, 'mlp': 8x8 digits), `n` of them (tiled if needed)."
    if kind == 'conv':
        from hybrid_gen.data.digits import styled_digits
        x = styled_digits(min(n, 10000), seed=0).x
    else:
        from hybrid_gen.data.digits import digits8
        x = digits8('all').x
    reps = -(-n // len(x))
    return x.repeat(reps, *([1] * (x.ndim - 1)))[:n].contiguous()

def make_model(kind, seed=0):
    torch.manual_seed(seed)
    if kind == 'conv': return VAE((3, 32, 32), 16, arch='conv')
    return VAE((1, 8, 8), 8, arch='mlp', hidden=(128, 64))

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def clocks():
    "(wall seconds, this process's CPU seconds): on a shared CPU the second excludes time spent waiting for a core."
    return time.perf_counter(), time.process_time()

def rates(n, t0, t1):
    "Samples/s by the wall clock and by process CPU time."
    return n / (t1[0] - t0[0]), n / max(t1[1] - t0[1], 1e-9)

# ---------------------------------------------------------------- contenders (each returns samples/s)
def run_fit(kind, x, dev, steps, warmup, compile=False):
    model = make_model(kind)
    t = {}
    def cb(st):
        if st.step == warmup: sync(dev); t['start'] = clocks()
        if st.step == warmup + steps: sync(dev); t['end'] = clocks()
    fit(model, Batches(TensorData(x=x), BS, seed=0), steps=warmup + steps, device=dev, progress=False,
        compile=compile, callbacks=(cb,))
    return rates(steps * BS, t['start'], t['end'])

def _bare_loop(kind, x, dev, steps, warmup, compile=False, contract=False):
    model = make_model(kind).to(dev).train()
    if compile:  # the same as fit(compile=True): compile each sub-network's forward in place
        for m in model.children():  # (Module.compile() on torch's own containers, e.g. nn.Sequential, is skipped by dynamo)
            if any(True for _ in m.parameters()): m.forward = torch.compile(m.forward)
    x = x.to(dev)
    params = list(model.parameters())
    if contract: opt = Optimizers({'model': params}, {'model': dict(name='adam', lr=1e-3)})
    else: opt = torch.optim.Adam(params, lr=1e-3)
    n, g = len(x), torch.Generator(device='cpu').manual_seed(0)
    perm, j = torch.randperm(n, generator=g).to(dev), 0
    for step in range(warmup + steps):
        if step == warmup: sync(dev); t0 = clocks()
        if (j + 1) * BS > n: perm, j = torch.randperm(n, generator=g).to(dev), 0
        xb = x[perm[j * BS:(j + 1) * BS]]; j += 1
        if contract:
            model.train_step({'x': xb}, opt)
        else:
            rec, kl = model.elbo_terms(xb)
            loss = (model.beta * kl - rec).mean()
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    sync(dev)
    return rates(steps * BS, t0, clocks())

def run_bare(kind, x, dev, steps, warmup, compile=False): return _bare_loop(kind, x, dev, steps, warmup, compile)
def run_bare_contract(kind, x, dev, steps, warmup): return _bare_loop(kind, x, dev, steps, warmup, contract=True)

def _import_pythae():
    p = os.environ.get('PYTHAE_PATH')
    if p and p not in sys.path: sys.path.append(p)
    import pythae  # noqa: F401
    return pythae

def run_pythae(kind, x, dev, steps, warmup):
    "Pythae's BaseTrainer on a pythae VAE with our encoder/decoder; steady-state samples/s from epoch timings."
    _import_pythae()
    from pythae.models import VAE as PVAE, VAEConfig
    from pythae.models.nn import BaseEncoder, BaseDecoder
    from pythae.models.base.base_utils import ModelOutput
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback
    from pythae.data.datasets import BaseDataset
    ours = make_model(kind)
    class Enc(BaseEncoder):
        def __init__(self): super().__init__(); self.net = ours.encoder
        def forward(self, x):
            mu, lv = self.net(x).chunk(2, -1)
            return ModelOutput(embedding=mu, log_covariance=lv.clamp(-12, 8))
    class Dec(BaseDecoder):
        def __init__(self): super().__init__(); self.net = ours.decoder
        def forward(self, z): return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))
    cfg = VAEConfig(input_dim=tuple(x.shape[1:]), latent_dim=ours.z_dim, reconstruction_loss='bce')
    model = PVAE(cfg, encoder=Enc(), decoder=Dec())
    # epochs of about `steps` steps: cut the data to a whole number of batches per epoch
    spe = max(1, min(len(x) // BS, steps // 2))
    data = x[:spe * BS].cpu()
    n_ep = 1 + max(1, round(steps / spe))           # first epoch = warm-up (not timed)
    times, t = [], {}
    class Timer(TrainingCallback):
        def on_epoch_begin(self, training_config, **kw): sync(dev); t['b'] = clocks()
        def on_epoch_end(self, training_config, **kw):
            sync(dev); e = clocks(); times.append((e[0] - t['b'][0], e[1] - t['b'][1]))
    with tempfile.TemporaryDirectory() as tmp:
        tc = BaseTrainerConfig(output_dir=tmp, per_device_train_batch_size=BS, num_epochs=n_ep, learning_rate=1e-3,
                               optimizer_cls='Adam', steps_saving=None, no_cuda=dev.type != 'cuda',
                               train_dataloader_num_workers=0, keep_best_on_train=False)
        tr = BaseTrainer(model, BaseDataset(data, torch.zeros(len(data))), training_config=tc, callbacks=[Timer()])
        logging.getLogger('pythae').setLevel(logging.ERROR)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith('pythae'): logging.getLogger(name).setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter('ignore'); tr.train()
    ep = times[1:] if len(times) > 1 else times
    n = spe * BS * len(ep)
    return n / sum(w for w, c in ep), n / max(sum(c for w, c in ep), 1e-9)

# ---------------------------------------------------------------- driver
def median_rate(fn, repeats):
    rs = [fn() for _ in range(repeats)]
    return statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)

def _per_model(spec):
    "'conv=40,mlp=400' -> {'conv': 40, 'mlp': 400}; '100' -> the same for every model."
    if '=' not in spec: return {k: int(spec) for k in ('conv', 'mlp')}
    return {k: int(v) for k, v in (kv.split('=') for kv in spec.split(','))}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', default='conv=40,mlp=400', help="timed steps per run, per model ('conv=40,mlp=400' or one int)")
    ap.add_argument('--warmup', default='conv=5,mlp=40', help='untimed warm-up steps per run, per model')
    ap.add_argument('--repeats', type=int, default=3, help='runs per contender (median reported)')
    ap.add_argument('--device', default=None, help="'cpu', 'cuda' (None: auto)")
    ap.add_argument('--models', default='conv,mlp')
    ap.add_argument('--compile', action='store_true', help='also time torch.compile paths (fit(compile=True), bare)')
    ap.add_argument('--compile-repeats', type=int, default=1, help='runs of each compiled contender (compiling is slow)')
    ap.add_argument('--no-pythae', action='store_true')
    ap.add_argument('--scale-models', default='mlp,conv', help='models of the training-set-size table')
    ap.add_argument('--sizes', default='10000,30000,100000', help="training-set sizes for the scaling table ('' to skip)")
    ap.add_argument('--n-data', type=int, default=10000, help='training-set size of the main table')
    a = ap.parse_args()
    a.steps, a.warmup = _per_model(a.steps), _per_model(a.warmup)
    dev = pick_device(a.device)
    print(f"# train_speed: torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, batch {BS}, "
          f"timed steps {a.steps} after warm-up steps {a.warmup}, median of {a.repeats}\n")
    pythae_note = None
    if not a.no_pythae:
        try: _import_pythae()
        except Exception as e: pythae_note = f"pythae skipped: {type(e).__name__}: {e}"
    else: pythae_note = 'pythae skipped (--no-pythae)'
    rows = []
    for kind in a.models.split(','):
        x = make_data(kind, a.n_data)
        cont = [('fit', lambda: run_fit(kind, x, dev, a.steps[kind], a.warmup[kind])),
                ('bare', lambda: run_bare(kind, x, dev, a.steps[kind], a.warmup[kind])),
                ('bare+contract', lambda: run_bare_contract(kind, x, dev, a.steps[kind], a.warmup[kind]))]
        if pythae_note is None: cont.append(('pythae', lambda: run_pythae(kind, x, dev, a.steps[kind], a.warmup[kind])))
        if a.compile:
            cont += [('fit (compile)', lambda: run_fit(kind, x, dev, a.steps[kind], a.warmup[kind], compile=True)),
                     ('bare (compile)', lambda: run_bare(kind, x, dev, a.steps[kind], a.warmup[kind], compile=True))]
        # interleave repeats so slow drifts of machine load hit every contender alike
        res = {n: [] for n, _ in cont}
        for r in range(a.repeats):
            for n, f in cont:
                if 'compile' in n and r >= a.compile_repeats: continue
                res[n].append(f())
        med = {n: (statistics.median(w for w, c in v), statistics.median(c for w, c in v)) for n, v in res.items()}
        for n, v in res.items():
            rows.append((kind, n, *med[n], med[n][0] / med['bare'][0], med[n][1] / med['bare'][1],
                         ' '.join(f'{w:.0f}' for w, c in v)))
        print(f'{kind}: ' + ', '.join(f'{n} {m[0]:.0f}/s' for n, m in med.items()), file=sys.stderr)
    print('| model | contender | samples/s, wall (median) | × bare, wall | samples/s, CPU time (median) | × bare, CPU time | runs, wall (samples/s) |')
    print('|---|---|---|---|---|---|---|')
    for k, n, w, c, rw, rc, v in rows: print(f'| {k} | {n} | {w:.0f} | {rw:.2f} | {c:.0f} | {rc:.2f} | {v} |')
    if pythae_note: print(f'\n{pythae_note}')
    sizes = [int(s) for s in a.sizes.split(',') if s]
    if sizes:
        print('\n| model | training-set size | fit µs/sample, wall | × smallest | fit µs/sample, CPU time | × smallest |')
        print('|---|---|---|---|---|---|')
        for kind in a.scale_models.split(','):
            base = None
            for n in sizes:
                x = make_data(kind, n)
                w, c = median_rate(lambda: run_fit(kind, x, dev, a.steps[kind], a.warmup[kind]), a.repeats)
                us = (1e6 / w, 1e6 / c); base = base or us
                print(f'| {kind} | {n} | {us[0]:.1f} | {us[0] / base[0]:.2f} | {us[1]:.1f} | {us[1] / base[1]:.2f} |', flush=True)

if __name__ == '__main__': main()
