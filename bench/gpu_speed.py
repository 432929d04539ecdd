"""Training throughput of every model family of the book, per preset size, with each CUDA switch on and off.

    python bench/gpu_speed.py [--device cuda] [--steps 50] [--warmup 10] [--models vae,hybrid_vae,...]
                              [--sizes quick,paper] [--variants eager,amp,amp+cl,amp+cl+compile]

For each model and size it times `hybrid_gen.train.fit` on random data of the right shapes (the data pipeline is
not what is measured: the tensors already sit on the device) and prints samples/s as a Markdown table, with the
speed-up of each variant over plain fp32 eager in the same run:
  eager      fp32, NCHW, no compile
  amp        bf16 autocast (fit(amp=True))
  amp+cl     + channels-last memory format
  amp+cl+compile  + torch.compile of every sub-network (the first steps compile; they are in the warm-up)
On a CPU it runs the same code (amp and channels-last are no-ops there), which is how it is checked here; the
figures that matter come from a GPU.
"""
import argparse, sys, time, statistics
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hybrid_gen.data.core import TensorData, Batches
from hybrid_gen.train import fit, pick_device

SIZES = {'quick': dict(S=32, bs=64), 'paper': dict(S=64, bs=128)}


def _imgs(n, C, S, g): return torch.rand(n, C, S, S, generator=g)


def spec(name, S, bs, n=2048):
    "Model constructor and Batches for `name` at image size S and batch size bs (random data in the right shapes)."
    g = torch.Generator().manual_seed(0)
    if name == 'vae':
        from hybrid_gen.models.vae import VAE
        return (lambda: VAE((3, S, S), 32, arch='conv')), Batches(TensorData(x=_imgs(n, 3, S, g)), bs)
    if name == 'hybrid_vae':
        from hybrid_gen.models.hybrid_vae import HybridVAE
        lab = TensorData(x=_imgs(n // 8, 3, S, g), h=torch.rand(n // 8, 10, generator=g))
        unl = TensorData(x=_imgs(n, 3, S, g))
        return (lambda: HybridVAE((3, S, S), 10, 32, hybrid=True)), Batches({'labelled': (lab, bs), 'unlabelled': (unl, bs)})
    if name in ('rbvae', 'srbvae'):
        from hybrid_gen.models.rbvae import RbVAE, SRbVAE
        cls = SRbVAE if name == 'srbvae' else RbVAE
        parts = {'unlabelled': (TensorData(x=_imgs(n, 3, S, g)), bs), 'reference': (TensorData(x=_imgs(n, 3, S, g)), bs)}
        return (lambda: cls(x_shape=(3, S, S))), Batches(parts)
    if name == 'lrlivae':
        from hybrid_gen.models.lrlivae import LrLiVAE
        d = TensorData(x=_imgs(n, 3, S, g), y=torch.randint(0, 10, (n,), generator=g))
        return (lambda: LrLiVAE((3, S, S), 10)), Batches(d, bs)
    if name in ('ali', 'hali'):
        from hybrid_gen.models.ali import ALI, HALI
        cls = HALI if name == 'hali' else ALI
        return (lambda: cls((3, S, S))), Batches(TensorData(x=_imgs(n, 3, S, g)), bs)
    raise ValueError(f'unknown model {name!r}')


VARIANTS = {'eager': dict(), 'amp': dict(amp=True), 'amp+cl': dict(amp=True, channels_last=True),
            'amp+cl+compile': dict(amp=True, channels_last=True, compile=True)}


def measure(make, batches, bs, dev, steps, warmup, **kw):
    "Samples/s of fit over `steps` updates after `warmup` untimed ones (read through fit's callback hook)."
    torch.manual_seed(0)
    t = {}
    def cb(st):
        if st.step == warmup:
            if dev.type == 'cuda': torch.cuda.synchronize()
            t['0'] = time.perf_counter()
    fit(make(), batches, steps=warmup + steps, device=dev, progress=False, callbacks=[cb], **kw)
    if dev.type == 'cuda': torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t['0'])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default=None); ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--warmup', type=int, default=10); ap.add_argument('--repeats', type=int, default=1)
    ap.add_argument('--models', default='vae,hybrid_vae,rbvae,srbvae,lrlivae,ali,hali')
    ap.add_argument('--sizes', default='quick,paper'); ap.add_argument('--variants', default=','.join(VARIANTS))
    a = ap.parse_args()
    dev = pick_device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'
    variants = a.variants.split(',')
    print(f'device: {name}; torch {torch.__version__}; {a.steps} timed steps after {a.warmup} warm-up steps\n')
    print('| model | size | batch | ' + ' | '.join(f'{v} samples/s' for v in variants) + ' | ' +
          ' | '.join(f'{v}/eager' for v in variants[1:]) + ' |')
    print('|' + '---|' * (3 + 2 * len(variants) - 1))
    for m in a.models.split(','):
        for s in a.sizes.split(','):
            S, bs = SIZES[s]['S'], SIZES[s]['bs']
            make, batches = spec(m, S, bs)
            batches = batches.to(dev)
            r = {v: statistics.median(measure(make, batches, bs, dev, a.steps, a.warmup, **VARIANTS[v])
                                      for _ in range(a.repeats)) for v in variants}
            print(f'| {m} | {s} ({S}x{S}) | {bs} | ' + ' | '.join(f'{r[v]:.0f}' for v in variants) + ' | ' +
                  ' | '.join(f'{r[v] / r[variants[0]]:.2f}x' for v in variants[1:]) + ' |', flush=True)


if __name__ == '__main__': main()
