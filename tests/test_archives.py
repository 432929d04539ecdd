"""Hostile archives and data files are refused before they cost time or memory: tar extended headers (pax records,
GNU long names) are capped by a streaming scan before `tarfile` parses them (its pax parser is quadratic in this
Python, CVE-2024-6232); the temporary folder of an extraction whose process was killed is removed by the next
extraction, never one of a live process; every loader checks the range of its labels. Each test writes its own small
files in tmp_path."""
import gzip, io, multiprocessing, os, signal, subprocess, sys, tarfile, tracemalloc
from pathlib import Path
import numpy as np
import pytest
from hybrid_gen import files
from hybrid_gen.data import real

BLOCK = 512


def _header(name, kind, size):
    "One 512-byte tar header block of type `kind` announcing `size` bytes of data."
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    return ti.tobuf(format=tarfile.USTAR_FORMAT)


def _pad(data):
    return data + bytes(-len(data) % BLOCK)


def _hostile_tar(kind, data, before=()):
    "A tar stream: the files `before`, then an extended header of type `kind` holding `data`, then one file 'a.txt'."
    out = b''
    for name, body in before:
        out += _header(name, tarfile.REGTYPE, len(body)) + _pad(body)
    out += _header('././@LongLink' if kind in (b'L', b'K') else 'PaxHeader', kind, len(data)) + _pad(data)
    return out + _header('a.txt', tarfile.REGTYPE, 1) + _pad(b'a') + bytes(2 * BLOCK)


def _extract_in_child(archive, dest, queue):
    try:
        real.extract_archive(archive, dest)
        queue.put(('ok', ''))
    except Exception as e:
        queue.put((type(e).__name__, str(e)))


def _refusal_within(archive, dest, seconds):
    "Run extract_archive in a forked child; (error type name, message), or None if it was still running."
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    p = ctx.Process(target=_extract_in_child, args=(archive, dest, queue))
    p.start()
    p.join(seconds)
    if p.is_alive():
        p.kill()
        p.join()
        return None
    return queue.get(timeout=5)


# --- tar extended headers ---------------------------------------------------------------------------------------

@pytest.mark.skipif(os.name != 'posix', reason='fork')
def test_a_pax_header_of_200000_digits_is_refused_at_once(tmp_path):
    archive = tmp_path / 'pax.tar.gz'
    archive.write_bytes(gzip.compress(_hostile_tar(tarfile.XHDTYPE, b'1' * 200_000), 9))
    assert archive.stat().st_size < 400
    got = _refusal_within(archive, tmp_path / 'out', 30)  # tarfile alone takes minutes (quadratic)
    assert got is not None, "extract_archive still parsing after 30 s"
    kind, msg = got
    assert kind == 'ArchiveLimitError', got
    assert 'pax.tar.gz' in msg and 'max_header=4096' in msg and 'CVE-2024-6232' in msg and '\n' not in msg
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('mode', ['', 'gz', 'bz2', 'xz'])
@pytest.mark.parametrize('kind', [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME,
                                  tarfile.GNUTYPE_LONGLINK, tarfile.SOLARIS_XHDTYPE])
def test_every_kind_of_oversized_extended_header_is_refused_in_every_compression(tmp_path, mode, kind):
    raw = _hostile_tar(kind, b'7' * 5000, before=[('first.bin', os.urandom(3000))])  # not the first member
    comp = {'': lambda b: b, 'gz': gzip.compress, 'bz2': __import__('bz2').compress,
            'xz': __import__('lzma').compress}[mode]
    archive = tmp_path / ('x.tar' + (f'.{mode}' if mode else ''))
    archive.write_bytes(comp(raw))
    with pytest.raises(real.ArchiveLimitError, match=r'x\.tar.*5000 bytes.*max_header=4096'):
        real.extract_archive(archive, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    assert sorted(os.listdir(tmp_path)) == [archive.name]  # no temporary folder left


def test_a_long_name_of_8_mib_is_refused_without_reading_it(tmp_path):
    record = 8 << 20
    archive = tmp_path / 'longname.tar.gz'
    archive.write_bytes(gzip.compress(_hostile_tar(tarfile.GNUTYPE_LONGNAME, b'n' * record), 6))
    tracemalloc.start()
    try:
        with pytest.raises(real.ArchiveLimitError, match=f'GNU long name of {record} bytes') as e:
            real.extract_archive(archive, tmp_path / 'out')
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 'longname.tar.gz' in str(e.value) and '\n' not in str(e.value)
    assert peak < record / 8, f"peak {peak} bytes while refusing a {record}-byte record"
    assert not (tmp_path / 'out').exists()


def test_extended_headers_are_capped_in_total_and_legitimate_ones_pass(tmp_path):
    names = [f'{i}/' + 'd' * 200 + '/' + 'f' * 200 + f'{i}.txt' for i in range(3)]  # > 100 chars: pax 'path'
    archive = tmp_path / 'pax_ok.tar'
    with tarfile.open(archive, 'w', format=tarfile.PAX_FORMAT) as tf:
        for n in names:
            ti = tarfile.TarInfo(n)
            ti.size = 2
            tf.addfile(ti, io.BytesIO(b'ok'))
    out = real.extract_archive(archive, tmp_path / 'out')
    assert all((out / n).read_bytes() == b'ok' for n in names)
    with pytest.raises(real.ArchiveLimitError, match='max_header_total=1000'):
        real.extract_archive(archive, tmp_path / 'out2', max_header_total=1000)  # 3 headers of ~430 bytes
    with pytest.raises(real.ArchiveLimitError, match='max_header=100'):
        real.extract_archive(archive, tmp_path / 'out3', max_header=100)
    assert real.extract_archive(archive, tmp_path / 'out4', max_header=None, max_header_total=None).is_dir()


# --- temporaries of killed extractions --------------------------------------------------------------------------

def _good_tar(path):
    with tarfile.open(path, 'w:gz') as tf:
        ti = tarfile.TarInfo('data/a.txt')
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b'a'))
    return path


def _temp_name(dest, pid, host=None):
    return f'.{dest.name}.extract-{pid}-{host or files._HOST}-abc123.extracting'


@pytest.mark.skipif(os.name != 'posix', reason='process ids as on POSIX')
def test_the_next_extraction_removes_the_temporaries_of_dead_writers_only(tmp_path):
    p = subprocess.Popen(['true'])
    p.wait()
    dead = p.pid  # a process that has ended
    dest = tmp_path / 'celeba'
    stale = tmp_path / _temp_name(dest, dead)
    live = tmp_path / _temp_name(dest, os.getpid())  # this process: alive
    other_host = tmp_path / _temp_name(dest, dead, '000000')
    other_dest = tmp_path / _temp_name(tmp_path / 'mnist', dead)
    for t in (stale, live, other_host, other_dest):
        (t / 'img_align_celeba').mkdir(parents=True)
        (t / 'img_align_celeba/000001.jpg').write_bytes(b'half')
    out = real.extract_archive(_good_tar(tmp_path / 'a.tar.gz'), dest)
    assert (out / 'data/a.txt').read_bytes() == b'a'
    assert not stale.exists()
    assert live.is_dir() and other_host.is_dir() and other_dest.is_dir()


def _extract_then_die(archive, dest):
    "In a child: extract, and SIGKILL ourselves once the archive is in the temporary folder."
    def die(*a):
        os.kill(os.getpid(), signal.SIGKILL)
    real._plan_merge = die
    real.extract_archive(archive, dest)


@pytest.mark.skipif(os.name != 'posix', reason='fork and signals')
def test_a_sigkilled_extraction_leaves_a_temporary_that_the_retry_removes(tmp_path):
    archive = _good_tar(tmp_path / 'a.tar.gz')
    dest = tmp_path / 'out'
    p = multiprocessing.get_context('fork').Process(target=_extract_then_die, args=(archive, dest))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n.endswith('.extracting')]
    assert len(left) == 1 and f'-{p.pid}-' in left[0], left
    assert (tmp_path / left[0] / 'data/a.txt').is_file()  # what the killed process had extracted
    real.extract_archive(archive, dest)
    assert sorted(os.listdir(tmp_path)) == ['a.tar.gz', 'out']
    assert (dest / 'data/a.txt').read_bytes() == b'a'


# --- label ranges -----------------------------------------------------------------------------------------------

def _one_line(e, name):
    msg = str(e.value)
    assert name in msg and '\n' not in msg, msg
    return msg


def test_cifar10_refuses_out_of_range_labels(tmp_path):
    import pickle
    folder = tmp_path / 'cifar10/cifar-10-batches-py'
    folder.mkdir(parents=True)
    data = np.zeros((2, 3072), np.uint8)
    (folder / 'test_batch').write_bytes(pickle.dumps({b'data': data, b'labels': [0, 99]}, protocol=2))
    with pytest.raises(real.DataFormatError) as e:
        real.load_cifar10(tmp_path, 'test')
    assert '0..9' in _one_line(e, 'test_batch')
    (folder / 'test_batch').write_bytes(pickle.dumps({b'data': data, b'labels': [0, -1]}, protocol=2))
    with pytest.raises(real.DataFormatError, match='test_batch'):
        real.load_cifar10(tmp_path, 'test')
    (folder / 'test_batch').write_bytes(pickle.dumps({b'data': data, b'labels': [3, 9]}, protocol=2))
    assert real.load_cifar10(tmp_path, 'test').y.tolist() == [3, 9]


@pytest.mark.parametrize('bad', [0, 11, 255])
def test_svhn_refuses_out_of_range_labels(tmp_path, bad):
    import scipy.io
    (tmp_path / 'svhn').mkdir()
    X = np.zeros((32, 32, 3, 3), np.uint8)
    scipy.io.savemat(tmp_path / 'svhn/test_32x32.mat', {'X': X, 'y': np.array([[10], [bad], [1]], np.uint8)})
    with pytest.raises(real.DataFormatError) as e:
        real.load_svhn(tmp_path, 'test')
    assert '1..10' in _one_line(e, 'test_32x32.mat')


def test_mnist_refuses_out_of_range_labels(tmp_path):
    import struct
    (tmp_path / 'mnist').mkdir()
    x = np.zeros((2, 28, 28), np.uint8)
    (tmp_path / 'mnist/t10k-images-idx3-ubyte').write_bytes(bytes([0, 0, 8, 3]) + struct.pack('>3I', 2, 28, 28)
                                                            + x.tobytes())
    (tmp_path / 'mnist/t10k-labels-idx1-ubyte').write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 10]))
    with pytest.raises(real.DataFormatError) as e:
        real.load_mnist(tmp_path, 'test')
    assert '0..9' in _one_line(e, 't10k-labels-idx1-ubyte')


def _celeba(root, lm_row=None, attr_row=None, part_row=None):
    "A CelebA folder of 2 blank images; the given row replaces the first image's landmarks / attributes / split."
    from PIL import Image
    cf = root / 'celeba'
    (cf / 'img_align_celeba').mkdir(parents=True, exist_ok=True)
    names = ['000001.jpg', '000002.jpg']
    for nm in names:
        Image.new('RGB', real.CELEBA_SIZE).save(cf / 'img_align_celeba' / nm)
    lm = [lm_row or [69, 111, 108, 111, 89, 135, 72, 152, 106, 152], [69, 111, 108, 111, 89, 135, 72, 152, 106, 152]]
    attr = [attr_row or [1] * 40, [-1] * 40]
    part = [0 if part_row is None else part_row, 0]
    cols = 'lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y'
    (cf / real.CELEBA_FILES[0]).write_text(f"2\n{cols}\n" + ''.join(
        f"{nm} {' '.join(map(str, r))}\n" for nm, r in zip(names, lm)))
    (cf / real.CELEBA_FILES[1]).write_text("2\n" + ' '.join(f'A{k}' for k in range(40)) + "\n" + ''.join(
        f"{nm} {' '.join(map(str, r))}\n" for nm, r in zip(names, attr)))
    (cf / real.CELEBA_FILES[2]).write_text(''.join(f"{nm} {p}\n" for nm, p in zip(names, part)))
    return root


@pytest.mark.parametrize('field, row, file, expect', [
    ('attr_row', [1] * 39 + [2], 1, '-1 or 1'),
    ('attr_row', [0] * 40, 1, '-1 or 1'),
    ('lm_row', [69, 111, 500, 111, 89, 135, 72, 152, 106, 152], 0, '0..177'),
    ('lm_row', [69, -3, 108, 111, 89, 135, 72, 152, 106, 152], 0, '0..217'),
    ('part_row', 7, 2, '0..2')])
def test_celeba_refuses_out_of_range_attributes_landmarks_and_splits(tmp_path, field, row, file, expect):
    root = _celeba(tmp_path, **{field: row})
    with pytest.raises(real.DataFormatError) as e:
        real.load_celeba(root, 'all', cache=False, size=16)
    assert expect in _one_line(e, real.CELEBA_FILES[file])


def test_celeba_in_range_lists_load(tmp_path):
    d = real.load_celeba(_celeba(tmp_path), 'all', cache=False, size=16)
    assert d.attr.tolist() == [[1.] * 40, [0.] * 40]
