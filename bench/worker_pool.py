"""Wall time of `hybrid_gen.experiments.run_jobs` with 1 worker and with every core, side by side in one run.

    python bench/worker_pool.py [--jobs 4] [--steps 300]

Each job trains a small conv VAE on styled digits (one torch thread, as in every experiment) and evaluates its
ELBO; the script prints both wall times, the ratio, and checks that the records are identical.
"""
import argparse, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hybrid_gen.experiments import run_jobs
from hybrid_gen.data.core import Batches
from hybrid_gen.data.digits import styled_digits
from hybrid_gen.models.vae import VAE
from hybrid_gen.train import fit

DATA = styled_digits(2000, seed=0)


def job(cfg, seed, ctx):
    m = VAE((3, 32, 32), 8, base_ch=16)
    fit(m, Batches(DATA, 32, seed=seed), steps=cfg['steps'], seed=seed, progress=False)
    return {'elbo': m.elbo(DATA.x[:256]).mean().item()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--jobs', type=int, default=4)
    ap.add_argument('--steps', type=int, default=300)
    a = ap.parse_args()
    cfgs = [{'steps': a.steps}]
    seeds = list(range(a.jobs))
    times, recs = {}, {}
    for w in (1, os.cpu_count() or 1):
        t0 = time.time()
        recs[w] = run_jobs(job, cfgs, seeds, tempfile.mkdtemp(), workers=w, log=None)
        times[w] = time.time() - t0
    w1, wn = 1, os.cpu_count() or 1
    print(f"{a.jobs} jobs x {a.steps} steps: 1 worker {times[w1]:.1f} s, {wn} workers {times[wn]:.1f} s, "
          f"speed-up {times[w1] / times[wn]:.2f}x; identical records: {recs[w1] == recs[wn]}")


if __name__ == '__main__':
    main()
