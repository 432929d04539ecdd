"Data sets as named tensors: containers and samplers (`core`), styled digits, cartoon faces, the 2-D toy set, real data loaders."
from .core import to_signed, from_signed, TensorData, split, Batches
