"""Packaging for hybrid_gen, driven by settings.ini (nbdev 2 layout).

The experiment notebooks in `nbs/20_experiments/` are copied into the wheel as
package data (`hybrid_gen/_experiments/`), so `hybrid_gen run NAME` works from a
plain `pip install` as well as from a checkout. They travel stripped of outputs
and execution counts (the book's site shows the executed ones): `hybrid_gen run`
needs only their code. The sdist carries settings.ini, CHANGELOG.md and the same
stripped notebooks, so `python -m build` (sdist, then the wheel from the sdist)
gives the same wheel as a build from the checkout.
"""
import json, shlex, shutil
from configparser import ConfigParser
from pathlib import Path
import setuptools
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature',
            '7 - Inactive']
lic = licenses[cfg['license']]
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
readme = here/'README.md'


EXPERIMENTS = Path('nbs')/'20_experiments'  # relative to the project root, in a checkout and in an sdist


def copy_stripped(src: Path, dst: Path):
    "Write notebook `src` to `dst` without outputs and execution counts; cells, tags and metadata are kept."
    nb = json.loads(src.read_text(encoding='utf-8'))
    for cell in nb['cells']:
        if cell['cell_type'] == 'code':
            cell['outputs'] = []
            cell['execution_count'] = None
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')


def copy_experiments(dst: Path):
    "Stripped copies of the experiment notebooks in folder `dst` (any stale notebook there removed first)."
    for old in dst.glob('*.ipynb'): old.unlink()
    for nb in sorted((here/EXPERIMENTS).glob('*.ipynb')): copy_stripped(nb, dst/nb.name)


class BuildWithExperiments(build_py):
    "Copy the papermill experiment notebooks, stripped, into the built package."
    def run(self):
        super().run()
        copy_experiments(Path(self.build_lib)/cfg['lib_name']/'_experiments')


class SdistWithSources(sdist):
    "Add what setup.py reads (settings.ini, the experiment notebooks, stripped) and CHANGELOG.md to the sdist."
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        for name in ('settings.ini', 'CHANGELOG.md'):
            if (here/name).exists(): shutil.copy2(here/name, Path(base_dir)/name)
        copy_experiments(Path(base_dir)/EXPERIMENTS)


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'License :: ' + lic[1],
                 'Natural Language :: ' + cfg['language'].title(),
                 'Programming Language :: Python :: 3'],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    python_requires='>=' + cfg['min_python'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': shlex.split(cfg.get('console_scripts', '')),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'build_py': BuildWithExperiments, 'sdist': SdistWithSources},
    author=cfg['author'], author_email=cfg['author_email'],
    description=cfg['description'], keywords=cfg['keywords'],
)
