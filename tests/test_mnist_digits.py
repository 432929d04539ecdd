"""The book's split of the bundled MNIST digits is fixed: the same indices in a fresh process whatever the random
state, a changed split is refused, and the loaders hand out copies, never their cache."""
import subprocess, sys
import pytest
import torch
from conftest import ROOT
import hybrid_gen.data.mnist_digits as md

SPLIT_SHA256 = '604c64efd5460ccacc380ed1b5845674fd16e991decb92379eb14a939dd8f91b'


def test_split_is_the_same_in_a_fresh_process_whatever_the_random_state():
    code = '\n'.join([
        'import random, numpy as np, torch',
        'random.seed(7)', 'np.random.seed(7)', 'torch.manual_seed(7)', 'torch.rand(99)',
        'from hybrid_gen.data.mnist_digits import mnist_split, split_digest, SPLITS',
        'print(split_digest({k: mnist_split(k).index for k in SPLITS}))'])
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == SPLIT_SHA256


def test_split_sizes_and_class_counts():
    parts = {k: md.mnist_split(k) for k in md.SPLITS}
    assert {k: torch.bincount(v.y, minlength=10).tolist() for k, v in parts.items()} == {
        'train': [350] * 10, 'val': [50] * 10, 'test': [100] * 10}
    assert torch.equal(torch.cat([v.index for v in parts.values()]).sort().values, torch.arange(5000))


def test_a_changed_split_is_refused(monkeypatch):
    md._mnist5k_split.cache_clear()
    monkeypatch.setattr(md, 'MNIST5K_SPLIT_SHA256', '0' * 64)
    with pytest.raises(RuntimeError, match='the code that defines the split has changed'):
        md.mnist_split('val')
    md._mnist5k_split.cache_clear()


def test_loaders_return_copies_not_their_cache():
    a = md.mnist_digits()
    a.x[:] = 1
    a.y[:] = 0
    b = md.mnist_digits()
    assert b.x.mean() < 0.2
    assert torch.bincount(b.y).tolist() == [500] * 10
    v = md.mnist_split('val')
    v.x[:] = 1
    v.index[:] = 0
    assert md.mnist_split('val').x.mean() < 0.2
    assert len(set(md.mnist_split('val').index.tolist())) == 500
