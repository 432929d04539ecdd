"""Seconds per sRb-VAE training step with and without sample reuse (Algorithm 1), side by side in one run.

    python bench/srbvae_reuse.py [--steps 40] [--rounds 3] [--base-ch 8] [--batch 24]

One torch thread (as in every experiment). The two settings alternate round by round, so a change of machine load
affects both; the script prints each round's seconds per step, the medians and their ratio.
"""
import argparse, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hybrid_gen.data.core import Batches
from hybrid_gen.data.digits import reference_digits, unlabelled_style_pairs
from hybrid_gen.models.rbvae import SRbVAE
from hybrid_gen.train import fit


def seconds_per_step(reuse, data, steps, base_ch):
    "Train a fresh sRb-VAE for `steps` steps (after 2 warm-up steps) and return the seconds per step."
    torch.manual_seed(0)
    m = SRbVAE(base_ch=base_ch, reuse_samples=reuse)
    fit(m, data, steps=2, progress=False)
    t = time.perf_counter()
    fit(m, data, steps=steps, progress=False, overwrite=True)
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--base-ch', type=int, default=8)
    ap.add_argument('--batch', type=int, default=24)
    a = ap.parse_args()
    torch.set_num_threads(1)
    ref = reference_digits(500, seed=0, style='edges')
    unl = unlabelled_style_pairs(500, seed=0, style='edges')
    data = Batches({'unlabelled': (unl, a.batch), 'reference': (ref, a.batch)}, seed=0)
    t = {True: [], False: []}
    for r in range(a.rounds):
        for reuse in (False, True):
            t[reuse].append(seconds_per_step(reuse, data, a.steps, a.base_ch))
        print(f"round {r}: fresh samples {t[False][-1] * 1e3:.0f} ms/step, reused {t[True][-1] * 1e3:.0f} ms/step")
    fresh, reuse = statistics.median(t[False]), statistics.median(t[True])
    print(f"median: fresh {fresh * 1e3:.0f} ms/step, reused {reuse * 1e3:.0f} ms/step, "
          f"reuse takes {reuse / fresh:.2f}x the time ({(1 - reuse / fresh) * 100:.0f} % faster)")


if __name__ == '__main__': main()
