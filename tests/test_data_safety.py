"""The real-data loaders keep a user's files and the machine safe (issue 12, part 1): extraction never replaces or
deletes a file it did not create; archives, IDX files and downloads are bounded; data of the wrong type, a folder as
a download target and a stale or damaged CelebA cache are caught; refusals say why; a killed atomic write leaves a
temporary file that the next write of the same file removes. Every test writes its own small files in tmp_path;
the HTTP server binds 127.0.0.1, runs in a daemon thread and stops by itself."""
import contextlib, gzip, http.server, io, os, signal, struct, subprocess, sys, tarfile, threading, time
import tracemalloc, warnings, zipfile
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from hybrid_gen import files
from hybrid_gen.data import real
from hybrid_gen.train import CheckpointError, load_checkpoint


def _tree(d):
    "Every path under `d`, relative, sorted."
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob('*'))


def _no_extracting_left(folder):
    "No temporary extraction folder of `extract_archive` is left in `folder`."
    return not [p for p in Path(folder).iterdir() if p.name.endswith('.extracting')]


def _zip(path, members, compression=zipfile.ZIP_STORED):
    "A zip with (name, bytes) members."
    with zipfile.ZipFile(path, 'w', compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def _tar(path, members, mode='w:gz'):
    "A tar with (name, bytes) files and (name, '->', target) symbolic links."
    with tarfile.open(path, mode) as tf:
        for m in members:
            ti = tarfile.TarInfo(m[0])
            if len(m) == 3:
                ti.type = tarfile.SYMTYPE
                ti.linkname = m[2]
                tf.addfile(ti)
            else:
                ti.size = len(m[1])
                tf.addfile(ti, io.BytesIO(m[1]))
    return path


def _idx(code, dims, data=b''):
    "The bytes of an IDX file: magic number with type `code`, the dimensions, then `data`."
    return bytes([0, 0, code, len(dims)]) + struct.pack('>' + 'I' * len(dims), *dims) + data


# --- extraction never deletes or replaces a file it did not create ----------------------------------------------

CELEBA_LIKE = [('img_align_celeba/000001.jpg', b'face 1'), ('img_align_celeba/000002.jpg', b'face 2'),
               ('list_attr_celeba.txt', b'the original list\n')]


@pytest.mark.parametrize('kind', ['zip', 'tar.gz'])
def test_extraction_keeps_the_users_files_and_refuses_to_replace_them(tmp_path, kind):
    archive = tmp_path / f'celeba_like.{kind}'
    if kind == 'zip':
        _zip(archive, CELEBA_LIKE)
    else:
        _tar(archive, CELEBA_LIKE)
    dest = tmp_path / 'celeba'
    (dest / 'img_align_celeba').mkdir(parents=True)
    (dest / 'img_align_celeba/my_own.jpg').write_bytes(b'my photo')
    (dest / 'list_attr_celeba.txt').write_bytes(b'my corrected list\n')
    before = _tree(dest)
    with pytest.raises(real.ExtractConflictError) as e:
        real.extract_archive(archive, dest)
    assert str(dest / 'list_attr_celeba.txt') in str(e.value) and 'nothing was extracted' in str(e.value)
    assert _tree(dest) == before  # nothing added, nothing deleted
    assert (dest / 'list_attr_celeba.txt').read_bytes() == b'my corrected list\n'
    assert (dest / 'img_align_celeba/my_own.jpg').read_bytes() == b'my photo'
    assert _no_extracting_left(tmp_path)
    (dest / 'list_attr_celeba.txt').write_bytes(b'the original list\n')  # identical to the archive's: fine
    assert real.extract_archive(archive, dest) == dest
    assert _tree(dest) == ['img_align_celeba', 'img_align_celeba/000001.jpg', 'img_align_celeba/000002.jpg',
                           'img_align_celeba/my_own.jpg', 'list_attr_celeba.txt']
    assert (dest / 'img_align_celeba/my_own.jpg').read_bytes() == b'my photo'
    assert (dest / 'img_align_celeba/000002.jpg').read_bytes() == b'face 2'
    real.extract_archive(archive, dest)  # again: everything is there and identical
    assert len(_tree(dest)) == 5 and _no_extracting_left(tmp_path)


def test_extraction_refuses_a_file_where_the_archive_has_a_folder(tmp_path):
    archive = _zip(tmp_path / 'a.zip', [('data/x.txt', b'x'), ('new.txt', b'n')])
    dest = tmp_path / 'out'
    dest.mkdir()
    (dest / 'data').write_bytes(b'a file of mine called data')
    with pytest.raises(real.ExtractConflictError, match='data'):
        real.extract_archive(archive, dest)
    assert _tree(dest) == ['data'] and (dest / 'data').read_bytes() == b'a file of mine called data'


# --- size limits ----------------------------------------------------------------------------------------------

def _bomb_zip(path, mib):
    "A zip holding `mib` MiB of zeros, written in pieces (about 1 KiB of zip per MiB)."
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        with z.open('zeros.bin', 'w') as f:
            for _ in range(mib):
                f.write(bytes(1 << 20))
    return path


def _bomb_tar(path, mib):
    "A tar.gz holding `mib` MiB of zeros."
    with open(path, 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode='w') as tf:
            ti = tarfile.TarInfo('zeros.bin')
            ti.size = mib << 20

            class _Zeros(io.RawIOBase):
                def readinto(self, b):
                    b[:] = bytes(len(b))
                    return len(b)
            tf.addfile(ti, _Zeros())
    return path


@pytest.mark.parametrize('kind', ['zip', 'tar.gz'])
def test_a_decompression_bomb_is_refused_before_it_is_written(tmp_path, kind):
    archive = (_bomb_zip if kind == 'zip' else _bomb_tar)(tmp_path / f'bomb.{kind}', 40)
    assert archive.stat().st_size < 400_000  # a few hundred KiB at most, unpacking to 40 MiB
    t0 = time.monotonic()
    with pytest.raises(real.ArchiveLimitError, match=r'max_ratio=100 for an archive of \d+ bytes'):
        real.extract_archive(archive, tmp_path / 'out')
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / 'out').exists() and _no_extracting_left(tmp_path)
    out = real.extract_archive(archive, tmp_path / 'trusted', max_ratio=None)  # the limits can be lifted
    assert (out / 'zeros.bin').stat().st_size == 40 << 20


def test_member_count_and_total_size_are_capped(tmp_path):
    many = _tar(tmp_path / 'many.tar.gz', [(f'f{i}.txt', b'%d' % i) for i in range(50)])
    with pytest.raises(real.ArchiveLimitError, match='max_members=49'):
        real.extract_archive(many, tmp_path / 'a', max_members=49)
    assert len(list(real.extract_archive(many, tmp_path / 'b', max_members=50).iterdir())) == 50
    rng = np.random.default_rng(0)
    big = _zip(tmp_path / 'big.zip', [(f'r{i}.bin', rng.bytes(30_000)) for i in range(4)])
    with pytest.raises(real.ArchiveLimitError, match='more than 100000 bytes'):
        real.extract_archive(big, tmp_path / 'c', max_bytes=100_000)
    with pytest.raises(real.ArchiveLimitError, match='max_members=3'):
        real.extract_archive(big, tmp_path / 'd', max_members=3)
    assert not any((tmp_path / x).exists() for x in 'acd') and _no_extracting_left(tmp_path)
    assert sum(f.stat().st_size for f in real.extract_archive(big, tmp_path / 'e').iterdir()) == 120_000
    assert real.ARCHIVE_MAX_MEMBERS >= 202_600 and real.ARCHIVE_MAX_BYTES >= 1_500_000_000  # CelebA's zip fits


def test_an_idx_header_is_checked_against_the_bytes_before_allocating(tmp_path):
    padded = tmp_path / 'padded-idx.gz'  # 10 images declared, 64 MiB of zeros behind them
    with gzip.open(padded, 'wb', compresslevel=1) as f:
        f.write(_idx(0x08, (10, 28, 28), bytes(10 * 28 * 28)))
        for _ in range(64):
            f.write(bytes(1 << 20))
    huge = tmp_path / 'huge-idx.gz'  # 2.3 GB of images declared, 1,000 bytes there
    with gzip.open(huge, 'wb') as f:
        f.write(_idx(0x08, (3_000_000, 28, 28), bytes(1000)))
    tracemalloc.start()
    try:
        with pytest.raises(real.DataFormatError, match='unexpected bytes after the data of shape'):
            real.read_idx(padded)
        with pytest.raises(real.DataFormatError, match='more than max_bytes=1073741824'):
            real.read_idx(huge)
        with pytest.raises(real.DataFormatError, match='truncated: expected 2352000000 bytes .* found 1000'):
            real.read_idx(huge, max_bytes=None)  # no cap: still read in chunks, only what is there
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # (before: all 64 MiB, or 2.3 GB, at once)
    plain = tmp_path / 'plain-idx'  # uncompressed: compared with the file size before reading the data
    plain.write_bytes(_idx(0x08, (3_000_000, 28, 28), bytes(1000)))
    with pytest.raises(real.DataFormatError, match='found 1000'):
        real.read_idx(plain, max_bytes=None)


@contextlib.contextmanager
def _endless_server(seconds=10):
    "An HTTP server on 127.0.0.1 sending zeros until the client hangs up; each answer ends after `seconds`."
    sent = []

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            if self.path.startswith('/announce/'):
                self.send_header('Content-Length', self.path.rsplit('/', 1)[1])
            self.end_headers()
            n, stop = 0, time.monotonic() + seconds
            try:
                while time.monotonic() < stop:
                    self.wfile.write(bytes(1 << 16))
                    n += 1 << 16
            except OSError:
                pass  # the client hung up
            sent.append(n)

    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    timer = threading.Timer(60, srv.shutdown)  # stops by itself, whatever the test does
    timer.daemon = True
    timer.start()
    try:
        yield f'http://127.0.0.1:{srv.server_address[1]}', sent
    finally:
        timer.cancel()
        srv.shutdown()
        srv.server_close()


def test_a_download_stops_past_its_expected_size(tmp_path):
    d = tmp_path / 'dl'
    with _endless_server() as (base, sent):
        t0 = time.monotonic()
        with pytest.raises(real.DownloadError, match=r'more than 100000 bytes \(the expected size\)'):
            real.download_url(base + '/zeros', d / 'a.bin', size=100_000, timeout=5)
        with pytest.raises(real.DownloadError, match=r'more than 1048576 bytes \(max_bytes=1048576\)'):
            real.download_url(base + '/zeros', d / 'b.bin', max_bytes=1 << 20, timeout=5)
        with pytest.raises(real.DownloadError, match='announces 1000000000000 bytes'):
            real.download_url(base + '/announce/1000000000000', d / 'c.bin', timeout=5)  # above the default cap
        with pytest.raises(real.DownloadError, match='announces 5000 bytes, more than 4000'):
            real.download_url(base + '/announce/5000', d / 'e.bin', size=4000, timeout=5)
        assert time.monotonic() - t0 < 5  # stopped at once, not when the server gave up
    assert _tree(d) == []  # nothing kept: bytes past the expected end cannot be the file
    src = tmp_path / 'src.bin'
    src.write_bytes(bytes(5000))
    with pytest.raises(real.DownloadError, match='holds 5000 bytes, more than 4000'):
        real.download_url(src.as_uri(), d / 'f.bin', size=4000)
    assert _tree(d) == []
    assert real.download_url(src.as_uri(), d / 'g.bin', size=5000).read_bytes() == bytes(5000)


# --- silent wrong data ----------------------------------------------------------------------------------------

def _mnist_dir(root, images:bytes, n=6):
    (root / 'mnist').mkdir(parents=True, exist_ok=True)
    (root / 'mnist/train-images-idx3-ubyte').write_bytes(images)
    (root / 'mnist/train-labels-idx1-ubyte').write_bytes(_idx(0x08, (n,), bytes(range(n))))


@pytest.mark.parametrize('code,dtype,name', [(0x0D, '>f4', '32-bit floats'), (0x0C, '>i4', '32-bit integers'),
                                             (0x09, 'i1', 'signed bytes')])
def test_idx_images_of_another_type_are_refused_not_rescaled(tmp_path, code, dtype, name):
    rng = np.random.default_rng(0)
    arr = rng.integers(-100, 100, (6, 28, 28)).astype(dtype)
    _mnist_dir(tmp_path, _idx(code, arr.shape, arr.tobytes()))
    with pytest.raises(real.DataFormatError, match=rf'holds {name} \(IDX type 0x{code:02x}\), expected unsigned '
                                                   r'bytes \(type 0x08\)'):
        real.load_mnist(tmp_path, 'train')
    assert np.array_equal(real.read_idx(tmp_path / 'mnist/train-images-idx3-ubyte'), arr)  # read as what it holds
    u8 = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    _mnist_dir(tmp_path, _idx(0x08, u8.shape, u8.tobytes()))
    m = real.load_mnist(tmp_path, 'train')
    assert torch.equal((m.x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(u8))
    assert m.y.tolist() == [0, 1, 2, 3, 4, 5]


def test_download_to_a_folder_is_an_error(tmp_path):
    src = tmp_path / 'blob.bin'
    src.write_bytes(b'payload')
    folder = tmp_path / 'downloads'
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match='is a folder') as e:
        real.download_url(src.as_uri(), folder)
    assert str(folder / 'blob.bin') in str(e.value)  # it says which path was meant
    assert _tree(folder) == []
    assert real.download_url(src.as_uri(), folder / 'blob.bin').read_bytes() == b'payload'


def _celeba(root, n=4):
    "A CelebA folder in the real formats: n plain-coloured 178x218 JPEGs, the three list files."
    cf = root / 'celeba'
    (cf / 'img_align_celeba').mkdir(parents=True)
    names = [f'{i + 1:06d}.jpg' for i in range(n)]
    for i, nm in enumerate(names):
        Image.new('RGB', (178, 218), (40 * i, 100, 200)).save(cf / 'img_align_celeba' / nm, quality=95)
    lm = '70 110 110 110 90 130 75 150 105 150'
    (cf / real.CELEBA_FILES[0]).write_text(f"{n}\n" + ' '.join(f'c{k}' for k in range(10)) + '\n'
                                           + ''.join(f"{nm} {lm}\n" for nm in names))
    _attrs(cf, names, -1)
    (cf / real.CELEBA_FILES[2]).write_text(''.join(f"{nm} 0\n" for nm in names))
    return cf


def _attrs(cf, names, v):
    "Write the attribute list with every attribute = v: the same size for v = 1 and v = -1, a new mtime."
    p = cf / real.CELEBA_FILES[1]
    old = p.stat().st_mtime_ns if p.exists() else None
    p.write_text(f"{len(names)}\n" + ' '.join(f'A{k}' for k in range(40)) + '\n'
                 + ''.join(f"{nm} " + ' '.join([f'{v:2d}'] * 40) + '\n' for nm in names))
    if old is not None:
        os.utime(p, ns=(old, old + 10 ** 9))  # a new modification time even on a coarse clock


def _load(root):
    "load_celeba(root, 'all', size=16), and the messages of its warnings."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        d = real.load_celeba(root, 'all', size=16)
    return d, [str(x.message) for x in w]


def test_the_celeba_cache_is_rebuilt_when_its_sources_change(tmp_path):
    cf = _celeba(tmp_path)
    names = [f'{i + 1:06d}.jpg' for i in range(4)]
    d, w = _load(tmp_path)
    assert d.attr.mean().item() == 0.0 and w == []
    assert (cf / 'cache_all_16_148_all.pt').is_file()
    assert _load(tmp_path)[1] == []  # the cache is used while nothing changed
    _attrs(cf, names, 1)
    d, w = _load(tmp_path)
    assert d.attr.mean().item() == 1.0  # (a stale cache gave 0.0)
    assert len(w) == 1 and 'list_attr_celeba.txt changed' in w[0]
    red_before = d.x[1, 0].mean().item()
    Image.new('RGB', (178, 218), (250, 100, 200)).save(cf / 'img_align_celeba/000002.jpg', quality=95)
    st = (cf / 'img_align_celeba/000002.jpg').stat()
    os.utime(cf / 'img_align_celeba/000002.jpg', ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    d, w = _load(tmp_path)
    assert 'images changed' in w[0]
    assert abs(red_before - 40 / 255) < 0.02 and abs(d.x[1, 0].mean().item() - 250 / 255) < 0.02
    assert _load(tmp_path)[1] == []


@pytest.mark.parametrize('damage', ['truncated', 'empty'])
def test_a_damaged_celeba_cache_is_rebuilt(tmp_path, damage):
    cf = _celeba(tmp_path)
    good = _load(tmp_path)[0]
    cp = cf / 'cache_all_16_148_all.pt'
    raw = cp.read_bytes()
    cp.write_bytes(raw[:len(raw) // 2] if damage == 'truncated' else b'')
    d, w = _load(tmp_path)
    assert len(w) == 1 and 'is unreadable (truncated or corrupt' in w[0] and 'rebuilding it' in w[0]
    assert torch.equal(d.x, good.x) and torch.equal(d.attr, good.attr)
    assert torch.load(cp, weights_only=True)['key']['version'] == 2  # written again, whole
    assert _load(tmp_path)[1] == []


# --- clear messages -------------------------------------------------------------------------------------------

CHAIN = [('a', '->', '.'), ('a/b', '->', '..')]  # each link alone stays inside; on disk a/b is b -> ..


def test_a_tar_link_chain_is_refused_as_unsafe_naming_the_member(tmp_path):
    archive = _tar(tmp_path / 'chain.tar', CHAIN, mode='w')
    with pytest.raises(real.UnsafeArchiveError) as e:
        real.extract_archive(archive, tmp_path / 'out')
    msg = str(e.value)
    assert "refusing member 'a/b' as unsafe" in msg and 'not a readable' not in msg
    assert not (tmp_path / 'out').exists() and _no_extracting_left(tmp_path)


def test_a_tar_link_chain_is_refused_without_pythons_filter_too(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, 'data_filter')  # as on Python < 3.11.4
    archive = _tar(tmp_path / 'chain.tar', CHAIN + [('l2', '->', 'a/../x')], mode='w')
    with pytest.raises(real.UnsafeArchiveError, match="refusing member 'a/b' as unsafe: it goes through the link 'a'"):
        real.extract_archive(archive, tmp_path / 'out')
    assert not (tmp_path / 'out').exists() and _no_extracting_left(tmp_path)


class _NotATensor:
    "A class a weights_only load refuses to build."


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.mark.parametrize('obj,name', [({'model': _NotATensor()}, '_NotATensor'), (_RunsCode(), 'system')])
def test_a_refused_pickle_checkpoint_says_why(tmp_path, obj, name):
    p = tmp_path / 'foreign.pt'
    torch.save(obj, p)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert 'holds code that loading with weights_only=True refuses' in msg and name in msg
    assert 'That refusal protects you' in msg and 'weights_only=False' in msg
    assert 'corrupt or truncated' not in msg
    assert 'Check the documentation of torch.load' in msg  # torch's explanation, whole
    assert '\x1b[' not in msg
    torch.save({'w': torch.zeros(3)}, p)
    raw = p.read_bytes()
    p.write_bytes(raw[:len(raw) // 2])  # a truncated file is still called that
    with pytest.raises(CheckpointError, match=r'not a readable checkpoint \(corrupt or truncated'):
        load_checkpoint(p)


def test_idx_dimensions_whose_product_overflows_are_a_clear_error(tmp_path):
    p = tmp_path / 'overflow-idx'
    p.write_bytes(_idx(0x08, (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), bytes(100)))
    n = (2 ** 32 - 1) ** 3
    with pytest.raises(real.DataFormatError, match=rf'declares shape \(4294967295, 4294967295, 4294967295\) of '
                                                   rf'unsigned bytes, {n} bytes: more than max_bytes'):
        real.read_idx(p)
    with pytest.raises(real.DataFormatError, match=rf'truncated: expected {n} bytes .* found 100'):
        real.read_idx(p, max_bytes=None)
    p.write_bytes(_idx(0x08, (2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16), bytes(100)))  # a product of 2**64: 0 in int64
    with pytest.raises(real.DataFormatError, match=rf'{2 ** 64} bytes: more than max_bytes'):
        real.read_idx(p)


# --- temporary files of killed writes -------------------------------------------------------------------------

WRITER = """import sys, time
from hybrid_gen.files import atomic_path
with atomic_path(sys.argv[1]) as t:
    t.write_bytes(b'half a file')
    print(t.name, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(os.name != 'posix', reason='signals and process ids as on POSIX')
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_the_next_write_removes_the_temporary_of_a_killed_write(tmp_path, sig):
    target = tmp_path / 'run.pt'
    p = subprocess.Popen([sys.executable, '-c', WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        name = p.stdout.readline().strip()
        assert name.startswith(f'.run.pt.atomic-{p.pid}-') and name.endswith('.tmp.pt'), name
        assert [t.name for t in files.atomic_temporaries(target)] == [name]
        with files.atomic_path(target) as t:  # another writer of the same file meanwhile: its temporary stays
            t.write_bytes(b'first')
        assert [t.name for t in files.atomic_temporaries(target)] == [name]
    finally:
        p.send_signal(sig)
        p.wait(10)
        p.stdout.close()
    assert p.returncode == -sig
    assert [t.name for t in files.atomic_temporaries(target)] == [name]  # left behind by the killed writer ...
    with files.atomic_path(target) as t:
        t.write_bytes(b'second')
    assert sorted(os.listdir(tmp_path)) == ['run.pt']  # ... and removed by the next write of run.pt
    assert target.read_bytes() == b'second'


@pytest.mark.skipif(os.name != 'posix', reason='process ids as on POSIX')
def test_only_stale_temporaries_of_this_machine_and_this_file_are_removed(tmp_path):
    done = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = int(done.stdout)  # a process that has ended
    target = tmp_path / 'results.json'
    keep = [f'.results.json.atomic-{os.getpid()}-{files._HOST}-abc123.tmp.json',  # alive: this process
            f'.results.json.atomic-{dead}-000000-abc123.tmp.json',  # another machine's
            f'.other.json.atomic-{dead}-{files._HOST}-abc123.tmp.json',  # another file's
            '.results.json.x7q2kd9a.tmp.json']  # not atomic_path's name
    stale = f'.results.json.atomic-{dead}-{files._HOST}-abc123.tmp.json'
    for n in keep + [stale]:
        (tmp_path / n).write_bytes(b'x')
    assert [t.name for t in files.remove_stale(target)] == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert [t.name for t in files.atomic_temporaries(target)] == sorted(keep[:2])
