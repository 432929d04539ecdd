import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('MPLBACKEND', 'Agg')

@pytest.fixture
def root(): return ROOT

def run_cli(*args, cwd=None, env=None, timeout=600):
    "Run the `hybrid_gen` console script of this interpreter's environment."
    import subprocess
    exe = Path(sys.executable).parent/'hybrid_gen'
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
