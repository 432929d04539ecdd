"""Every model class exported by `hybrid_gen.models` through the one model interface (see the chapter
"One model interface", nbs/00_foundations/06_models.ipynb): encode/decode/sample/reconstruct/forward, images in
[0, 1] at every public boundary, evaluation calls under no_grad with the mode restored, CPU inputs accepted,
custom networks used as given, 28x28 accepted or refused at construction, and bad batches refused before a step."""
import copy, math
import pytest, torch
from torch import nn
import hybrid_gen.models as M
from hybrid_gen.models.core import Model
from hybrid_gen.train import fit

CLASSES = [getattr(M, n) for n in M.__all__]


def _map_images(model, batch, fn, spec=None):
    "A copy of `batch` with `fn` applied to every tensor the spec calls 'images'."
    spec = model.batch_spec if spec is None else spec
    out = dict(batch)
    for key, kind in spec.items():
        k = key.rstrip('?')
        if k not in batch: continue
        if isinstance(kind, dict): out[k] = _map_images(model, batch[k], fn, kind)
        elif kind == 'images': out[k] = fn(batch[k])
    return out


def _map_classes(model, batch, fn, spec=None):
    spec = model.batch_spec if spec is None else spec
    out, hit = dict(batch), False
    for key, kind in spec.items():
        k = key.rstrip('?')
        if k not in batch: continue
        if isinstance(kind, dict):
            out[k], h = _map_classes(model, batch[k], fn, kind)
            hit = hit or h
        elif kind == 'classes':
            out[k], hit = fn(batch[k]), True
    return out, hit


def _in01(t):
    return t.dtype.is_floating_point and t.min().item() >= 0 and t.max().item() <= 1


def test_every_model_is_a_model():
    assert CLASSES, "hybrid_gen.models exports no model"
    for cls in CLASSES:
        assert issubclass(cls, Model), f"{cls.__name__} does not derive from hybrid_gen.models.core.Model"


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_public_calls(cls):
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    model.check_batch(batch)
    losses = model(batch)
    assert isinstance(losses, dict) and losses, f"{cls.__name__}.forward must return a dict of losses"
    for k, v in losses.items():
        assert torch.is_tensor(v) and v.ndim == 0 and math.isfinite(v.item()), (k, v)
    x = next(t for t in _leaves(model, batch) if t.ndim == 4)
    model.train()
    codes = model.encode(x, **cond)
    assert model.training, "encode must restore the training mode"
    assert isinstance(codes, dict) and codes
    for t in codes.values():
        assert t.shape[0] == x.shape[0] and not t.requires_grad
    img = model.decode(**{**cond, **codes})
    assert img.shape == x.shape and _in01(img) and not img.requires_grad
    rec = model.reconstruct(x, **cond)
    assert rec.shape == x.shape and _in01(rec) and not rec.requires_grad
    n = x.shape[0]
    s = model.sample(n, **cond)
    assert s.shape == (n, *model.x_shape) and _in01(s) and not s.requires_grad
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.sample(n, generator=g1, **cond), model.sample(n, generator=g2, **cond)), \
        "sample(generator=...) must be reproducible"


def _leaves(model, batch, spec=None):
    spec = model.batch_spec if spec is None else spec
    for key, kind in spec.items():
        k = key.rstrip('?')
        if k not in batch: continue
        if isinstance(kind, dict): yield from _leaves(model, batch[k], kind)
        elif kind == 'images': yield batch[k]


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_state_and_config_round_trip(cls):
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    plain, custom = model.portable_config()
    assert not custom, f"{cls.__name__}.toy() should build default networks, got custom {custom}"
    again = cls.from_config(plain)
    again.load_state_dict(model.state_dict())
    model.eval()
    again.eval()
    x = next(_leaves(model, batch))
    for k, v in model.encode(x, **cond).items():
        assert torch.allclose(v, again.encode(x, **cond)[k]), k


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_custom_networks_are_used(cls):
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    assert model.networks, f"{cls.__name__}.networks names no network argument"
    nets = {name: copy.deepcopy(getattr(model, name)) for name in model.networks}
    for name, net in nets.items():
        assert isinstance(net, nn.Module), f"{cls.__name__}.{name} is not an nn.Module"
    plain, _ = model.portable_config()
    custom = cls(**{**plain, **nets})
    for name, net in nets.items():
        assert getattr(custom, name) is net, f"{cls.__name__}: the {name}= argument is not used as given"
    assert sorted(custom.portable_config()[1]) == sorted(nets)
    fit(custom, [batch, batch], steps=2, progress=False)


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_28x28(cls):
    try:
        model, batch, cond = cls.toy(x_shape=(1, 28, 28))
    except ValueError as e:
        assert '28' in str(e), f"{cls.__name__} refused 28x28 without naming the size: {e}"
        return
    x = next(_leaves(model, batch))
    assert model.reconstruct(x, **cond).shape == x.shape
    assert model.sample(3, **{k: v[:3] for k, v in cond.items()}).shape == (3, 1, 28, 28)
    fit(model, [batch], steps=1, progress=False)


BAD_IMAGES = {
    '0..255': (lambda x: x * 255, ValueError, 'divide by 255'),
    '[-1, 1]': (lambda x: x * 2 - 1, ValueError, r'\(x \+ 1\) / 2'),
    'float64': (lambda x: x.double(), TypeError, 'float64'),
    'uint8': (lambda x: (x * 255).to(torch.uint8), TypeError, 'uint8'),
}


@pytest.mark.parametrize('bad', list(BAD_IMAGES))
@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_bad_images_refused_on_any_batch(cls, bad):
    fn, err, msg = BAD_IMAGES[bad]
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    wrong = _map_images(model, batch, fn)
    with pytest.raises(err, match=msg):
        model.check_batch(wrong)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(err, match=msg):
        fit(model, [wrong, batch], steps=2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "a bad first batch changed the model"
    with pytest.raises(err, match=msg):  # the second batch is checked too, not only the first
        fit(model, [batch, wrong], steps=2, progress=False)


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_out_of_range_labels_refused(cls):
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    wrong, has = _map_classes(model, batch, lambda y: torch.full_like(y, model.n_classes) if hasattr(model, 'n_classes') else y)
    if not has:
        pytest.skip(f"{cls.__name__} takes no class labels")
    with pytest.raises(ValueError, match=r'must lie in \[0, \d+\)'):
        model.check_batch(wrong)
    with pytest.raises(ValueError, match=r'must lie in \[0, \d+\)'):
        fit(model, [batch, wrong], steps=2, progress=False)


def _to_double(t):
    return t.double() if torch.is_tensor(t) and t.is_floating_point() else t


def _map_floats(batch, fn):
    "A copy of a (nested) batch with `fn` applied to every floating-point tensor."
    return {k: _map_floats(v, fn) if isinstance(v, dict) else fn(v) for k, v in batch.items()}


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_float64(cls):
    "A `.double()` model trains, encodes and samples in float64: every draw it makes follows its parameters' dtype."
    torch.manual_seed(0)
    model, batch, cond = cls.toy()
    model = model.double()
    batch, cond = _map_floats(batch, _to_double), _map_floats(cond, _to_double)
    losses = model(batch)
    for k, v in losses.items():
        assert v.dtype == torch.float64 and math.isfinite(v.item()), (cls.__name__, k, v.dtype, v)
    graphs = [v for v in losses.values() if v.requires_grad]
    assert graphs, f"{cls.__name__}.forward returned no loss with a graph"
    sum(graphs).backward()
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in model.parameters())
    x = next(t for t in _leaves(model, batch) if t.ndim == 4)
    for k, v in model.encode(x, **cond).items():
        assert v.dtype == torch.float64, (cls.__name__, k, v.dtype)
    assert model.reconstruct(x, **cond).dtype == torch.float64
    n = x.shape[0]
    s = model.sample(n, **cond)
    assert s.dtype == torch.float64 and s.shape == (n, *model.x_shape) and _in01(s)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.sample(n, generator=g1, **cond), model.sample(n, generator=g2, **cond))
