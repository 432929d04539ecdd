"""Cost of the training-data fingerprint: milliseconds per MB that `fit` spends hashing every byte of its data
(SHA-256 over 16 MB row chunks), for a Batches part and for a list of batches. Run: python bench/fingerprint.py"""
import time
import torch
from hybrid_gen.data.core import TensorData, Batches
from hybrid_gen.train import _Indexed, _source

def per_mb(f, nbytes, reps=5):
    f()  # warm-up
    best = min(_time(f) for _ in range(reps))
    return 1e3 * best / (nbytes / 2 ** 20)

def _time(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t

if __name__ == '__main__':
    torch.set_num_threads(1)
    x = torch.rand(60000, 1, 28, 28)  # MNIST-sized, float32: 188 MB
    y = torch.randint(0, 10, (60000,))
    n = x.numel() * 4 + y.numel() * 8
    src = _Indexed(Batches(TensorData(x=x, y=y), 64))
    print(f"Batches, {n / 2 ** 20:.0f} MB: {per_mb(src.fingerprint, n):.3f} ms per MB")
    xs = x[:, :, ::2, ::2]  # a strided view: copied chunk by chunk
    ns = xs.numel() * 4
    print(f"strided view, {ns / 2 ** 20:.0f} MB: {per_mb(lambda: _Indexed(Batches(TensorData(x=xs), 64)).fingerprint(), ns):.3f} ms per MB")
    batches = [{'x': x[i:i + 64]} for i in range(0, 60000, 64)]
    s = _source(batches).to('cpu', 0, 1)
    print(f"list of {len(batches)} batches, {x.numel() * 4 / 2 ** 20:.0f} MB: "
          f"{per_mb(s.fingerprint, x.numel() * 4):.3f} ms per MB")
