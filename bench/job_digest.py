"""How long the code digests of a job's cache key take: `source_digest` (every hybrid_gen/**/*.py, read once per
process) and `notebook_digest` (outside IPython: empty). Run: python bench/job_digest.py"""
import time
from hybrid_gen import experiments as ex

t0 = time.perf_counter()
d = ex._source_digest()
ex.source_digest()
t1 = time.perf_counter()
for _ in range(100): ex.source_digest()
t2 = time.perf_counter()
print(f"source digest {d}: {1e3 * (t1 - t0):.1f} ms to read the library; {1e6 * (t2 - t1) / 100:.2f} us per later call")
t0 = time.perf_counter()
k = ex.job_key({'model': 'VAE', 'beta': 1.0}, 0, {'steps': 10}, {'library': d, 'notebook': ex.notebook_digest()})
print(f"job_key {k}: {1e6 * (time.perf_counter() - t0):.0f} us")
