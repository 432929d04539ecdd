"""The model families of the book; each chapter in `nbs/10_models` exports one module here.

This file is written by hand (nbdev exports the modules, not this index): it re-exports every model class so that
`from hybrid_gen.models import SRbVAE` works.
"""
from .vae import VAE
from .hybrid_vae import HybridVAE, FVAE
from .rbvae import RbVAE, SRbVAE
from .baselines import PGVAE, BetaVAE, BetaTCVAE, DIPVAE, SVAE, Mathieu2016
from .lrlivae import LrLiVAE
from .conditional import CVAE, CVAEGAN, BaoCVAEGAN, CGAN
from .ali import ALI, HALI

__all__ = ['VAE', 'HybridVAE', 'FVAE', 'RbVAE', 'SRbVAE', 'PGVAE', 'BetaVAE', 'BetaTCVAE', 'DIPVAE', 'SVAE',
           'Mathieu2016', 'LrLiVAE', 'CVAE', 'CVAEGAN', 'BaoCVAEGAN',
           'CGAN', 'ALI', 'HALI']
