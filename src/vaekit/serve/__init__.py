"""The latent explorer (design.md, "serve/"): `app.py` serves a page (`static/`) and a JSON API
over one trained VAE run on localhost; `vaekit serve RUN_DIR` starts it."""

from vaekit.serve.app import Explorer, ExplorerServer, make_server

__all__ = ["Explorer", "ExplorerServer", "make_server"]
