"""What a user gets wrong, end to end through the public API: each mistake is one clear error that names what was
expected and what came, raised before any training happens, and leaves no half-written file behind.
(The CLI's errors are in test_cli.py; the notebooks test each piece in isolation.)"""
import gzip, hashlib, os, struct
from pathlib import Path
import numpy as np, pytest, torch
from hybrid_gen.data.core import TensorData, Batches
from hybrid_gen.models.vae import VAE
from hybrid_gen.train import fit, save_checkpoint, load_checkpoint, CheckpointError
from hybrid_gen.data import real


def _data(n=64, **kw):
    g = torch.Generator().manual_seed(0)
    return TensorData(x=torch.rand(n, 1, 8, 8, generator=g), **kw)


def _vae(): return VAE(x_shape=(1, 8, 8), z_dim=2, arch='mlp', hidden=(16,))


def _params(m): return [p.detach().clone() for p in m.parameters()]


def _unchanged(m, before): return all(torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_wrong_image_shape_into_fit():
    m = _vae()
    before = _params(m)
    d = TensorData(x=torch.rand(64, 1, 16, 16))
    with pytest.raises(ValueError, match=r"shape \(B, 1, 8, 8\), got \(16, 1, 16, 16\)"):
        fit(m, Batches(d, 16), steps=3, progress=False)
    assert _unchanged(m, before)


def test_integer_images_into_fit():
    m = _vae()
    d = TensorData(x=(torch.rand(64, 1, 8, 8) * 255).to(torch.uint8))
    with pytest.raises(TypeError, match='floating point'):
        fit(m, Batches(d, 16), steps=3, progress=False)


def test_out_of_range_images_into_fit():
    m = _vae()
    d = TensorData(x=torch.rand(64, 1, 8, 8) * 255)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        fit(m, Batches(d, 16), steps=3, progress=False)


def test_nan_in_the_data_is_refused_before_training():
    m = _vae()
    before = _params(m)
    x = torch.rand(64, 1, 8, 8)
    x[50, 0, 3, 3] = float('nan')  # not in the first batch
    with pytest.raises(ValueError, match='NaN'):
        fit(m, Batches(TensorData(x=x), 16), steps=8, progress=False)
    assert _unchanged(m, before)


def test_a_model_without_the_contract():
    with pytest.raises(TypeError, match='train_step'):
        fit(torch.nn.Linear(2, 2), Batches(_data(), 16), steps=1, progress=False)


def test_checkpoint_from_another_model(tmp_path):
    m = _vae()
    p = save_checkpoint(tmp_path/'vae.pt', m, step=3)
    other = VAE(x_shape=(1, 8, 8), z_dim=3, arch='mlp', hidden=(16,))
    with pytest.raises(CheckpointError):
        load_checkpoint(p, other)
    with pytest.raises(CheckpointError):
        load_checkpoint(p, torch.nn.Linear(2, 2))


def test_corrupt_checkpoint(tmp_path):
    p = save_checkpoint(tmp_path/'vae.pt', _vae(), step=3)
    b = bytearray(p.read_bytes())
    b[len(b)//2] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(CheckpointError):
        load_checkpoint(p, _vae())
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        load_checkpoint(p, _vae())


def _idx(path, arr, code=0x08):
    hdr = bytes([0, 0, code, arr.ndim]) + struct.pack('>' + 'I' * arr.ndim, *arr.shape)
    with gzip.open(path, 'wb') as f: f.write(hdr + arr.astype('>u1').tobytes())


def _mnist(root, n=5, truncate=False):
    d = root/'mnist'
    d.mkdir(parents=True, exist_ok=True)
    for split, pre in (('train', 'train'), ('test', 't10k')):
        _idx(d/f'{pre}-images-idx3-ubyte.gz', np.random.RandomState(0).randint(0, 256, (n, 28, 28)))
        _idx(d/f'{pre}-labels-idx1-ubyte.gz', np.arange(n) % 10)
    if truncate:
        f = d/'train-images-idx3-ubyte.gz'
        raw = gzip.decompress(f.read_bytes())
        with gzip.open(f, 'wb') as g: g.write(raw[:-100])


def test_mnist_from_a_folder_and_from_the_environment(tmp_path, monkeypatch):
    _mnist(tmp_path)
    d = real.load_mnist(tmp_path, 'train')
    assert d.x.shape == (5, 1, 28, 28) and d.x.dtype == torch.float32 and 0 <= d.x.min() and d.x.max() <= 1
    assert d.y.tolist() == [0, 1, 2, 3, 4]
    monkeypatch.setenv('HYBRID_GEN_DATA', str(tmp_path))
    assert torch.equal(real.load_mnist(split='train').x, d.x)


def test_missing_and_truncated_data_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='mnist'):
        real.load_mnist(tmp_path/'nowhere', 'train')
    _mnist(tmp_path, truncate=True)
    with pytest.raises(real.DataFormatError, match='truncated'):
        real.load_mnist(tmp_path, 'train')


def test_checksum_mismatch_leaves_nothing(tmp_path):
    src = tmp_path/'src.bin'
    src.write_bytes(os.urandom(4096))
    dest = tmp_path/'out'/'file.bin'
    with pytest.raises(real.ChecksumError):
        real.download_url(src.as_uri(), dest, sha256='0' * 64)
    assert not dest.exists() and not (dest.parent.exists() and any(dest.parent.iterdir()))  # no file, no .part
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    assert real.download_url(src.as_uri(), dest, sha256=good).read_bytes() == src.read_bytes()


class _Regression(torch.nn.Module):
    "A model without the image contract: only param_groups / default_optim / train_step."
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def param_groups(self):
        return {'model': list(self.parameters())}

    def default_optim(self):
        return {'model': dict(name='sgd', lr=0.1)}

    def train_step(self, b, opt):
        loss = (self.net(b['x']).squeeze(1) - b['y']).pow(2).mean()
        opt.step('model', loss)
        return {'mse': loss.item()}


def _rows():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    return TensorData(x=x, y=x.sum(1))


@pytest.mark.parametrize('kw, match', [
    (dict(optim={'model': dict(clip=-1)}), "clip must be a positive number or None, got -1"),
    (dict(optim={'model': dict(clip=0)}), "clip must be a positive number or None, got 0"),
    (dict(log_every=0), 'log_every must be an int >= 1, got 0'),
    (dict(seed=1.5), 'seed must be an int'),
    (dict(callbacks=[print, 'stop']), 'callbacks must be callables'),
    (dict(optim={'model': dict(name='lbfgs')}), 'needs a closure'),
    (dict(optim={'model': dict(name='adamm')}), 'torch.optim optimizer'),
    (dict(schedules={'model': 0.1}), 'needs a function optimizer -> LRScheduler'),
])
def test_bad_fit_settings_are_refused_before_any_step(kw, match):
    m = _Regression()
    before = _params(m)
    with pytest.raises((TypeError, ValueError), match=match):
        fit(m, Batches(_rows(), 16), steps=3, progress=False, **kw)
    assert _unchanged(m, before)


def test_a_bad_batch_deep_in_a_list_stops_at_that_step(tmp_path):
    rows = _rows()
    batches = [{'x': rows.x[i:i + 16], 'y': rows.y[i:i + 16]} for i in range(0, 64, 16)]
    batches[2] = (batches[2]['x'], batches[2]['y'])  # a tuple, as a DataLoader over a TensorDataset yields
    with pytest.raises(TypeError, match=r'batch 2 is a tuple; expected a dict'):
        fit(_Regression(), batches, steps=4, ckpt=tmp_path / 'r.pt', progress=False)
    assert load_checkpoint(tmp_path / 'r.pt')['step'] == 2  # the two steps done were saved
    with pytest.raises(ValueError, match=r'ran out after 4 batches: a one-shot iterator'):
        fit(_Regression(), iter(batches[:2] + batches[3:] + batches[:1]), steps=5, progress=False)
