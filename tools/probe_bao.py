"""Maintainer probe: Bao's CVAE-GAN at the Lr-LiVAE experiment's long budget, one seed, several loss weightings.

    python tools/probe_bao.py JUDGE_PT [--steps 1500] [--seed 0] [--out /tmp/probe_bao]

Trains `BaoCVAEGAN` as nbs/20_experiments/lrlivae.ipynb does (augmented digits32, batch 32, base_ch 16, the
authors' recipe) once per weighting below, then scores 50 samples per class with that experiment's judge
(JUDGE_PT: its cached judge.pt) and saves a sample grid per weighting. Prints one row per weighting.
"""
import argparse, json, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import torch, torch.nn as nn
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from hybrid_gen.data.core import Batches, TensorData
from hybrid_gen.data.digits import digits32
from hybrid_gen.train import fit
from hybrid_gen.metrics import batched, inception_score, class_ms_ssim, intra_class_diversity
from hybrid_gen.models.conditional import BaoCVAEGAN
from hybrid_gen.plots import show_images

WEIGHTINGS = {  # multiples of the recipe's pixel weight, as BAO_WEIGHTS
    'feat 0.1, fm_d 1, fm_c 0.1': {'feat': 0.1, 'fm_d': 1., 'fm_c': 0.1},
    "Bao's ratios: feat 1, fm_d = fm_c = 1e-3": {'feat': 1., 'fm_d': 1e-3, 'fm_c': 1e-3},
    'feat 0.1, fm_d = fm_c = 1e-3': {'feat': 0.1, 'fm_d': 1e-3, 'fm_c': 1e-3},
    'feat 0.1, fm_d = fm_c = 1e-3, adv 1': {'feat': 0.1, 'fm_d': 1e-3, 'fm_c': 1e-3, 'adv': 1.},
}

class Judge(nn.Module):  # the experiment's judge network (weights from JUDGE_PT)
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3),
                                 nn.Linear(128 * 16, 10))

    def forward(self, x):
        return self.net(x)

def one(args):
    name, w, a = args
    torch.set_num_threads(1)
    train = digits32('train', n=4000, seed=0, augment=True)
    m = BaoCVAEGAN((1, 32, 32), 10, z_dim=16, weights=w, base_ch=16)
    t0 = time.time()
    fit(m, Batches(TensorData(x=train.x, y=train.y), 32, seed=a.seed), steps=a.steps, seed=a.seed, progress=False)
    secs = time.time() - t0
    m.eval()
    judge = Judge()
    judge.load_state_dict(torch.load(a.judge, weights_only=True))
    judge.eval()
    y = torch.arange(10).repeat_interleave(50)
    x = m.sample(len(y), generator=torch.Generator().manual_seed(10_000 + a.seed), y=y)
    with torch.no_grad():
        p = batched(lambda t: torch.softmax(judge(t), 1), x, batch_size=500)
    ok = p.argmax(1) == y
    _, fdiv = intra_class_diversity(x, y, include_self=False, keep=ok, sims=class_ms_ssim(x, y))
    fig, ax = plt.subplots(figsize=(4, 5))
    show_images(x.view(10, 50, 1, 32, 32)[:, :8].flatten(0, 1), nrow=8, ax=ax, title=name)
    fig.savefig(Path(a.out)/f"{name.replace(' ', '_').replace(',', '').replace(':', '')}.png", dpi=80)
    return dict(weighting=name, label_accuracy=ok.float().mean().item(), inception_score=inception_score(p)[0],
                faithful_diversity=fdiv, train_seconds=secs)

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('judge')
    ap.add_argument('--steps', type=int, default=1500)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default='/tmp/probe_bao')
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(a.workers) as ex:
        for r in ex.map(one, [(n, w, a) for n, w in WEIGHTINGS.items()]):
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
