"""Packaging for hybrid_gen, driven by settings.ini (nbdev 2 layout).

The experiment notebooks in `nbs/20_experiments/` are copied into the wheel as
package data (`hybrid_gen/_experiments/`), so `hybrid_gen run NAME` works from a
plain `pip install` as well as from a checkout.
"""
import shlex, shutil
from configparser import ConfigParser
from pathlib import Path
import setuptools
from setuptools.command.build_py import build_py

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
lic = licenses[cfg['license']]
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))


class BuildWithExperiments(build_py):
    "Copy the papermill experiment notebooks into the built package."
    def run(self):
        super().run()
        src = here/'nbs'/'20_experiments'
        dst = Path(self.build_lib)/cfg['lib_name']/'_experiments'
        dst.mkdir(parents=True, exist_ok=True)
        for nb in sorted(src.glob('*.ipynb')): shutil.copy2(nb, dst/nb.name)


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
    long_description=(here/'README.md').read_text(encoding='utf-8') if (here/'README.md').exists() else cfg['description'],
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': shlex.split(cfg.get('console_scripts', '')),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'build_py': BuildWithExperiments},
    author=cfg['author'], author_email=cfg['author_email'],
    description=cfg['description'], keywords=cfg['keywords'],
)
