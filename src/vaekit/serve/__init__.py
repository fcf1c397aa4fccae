"""The latent explorer (design.md, "serve/"): `vaekit serve RUN_DIR` serves a page and a JSON API
over one trained VAE run on localhost. `app.py` is the HTTP server, `request.py` what a request may
hold, `api.py` the JSON endpoints, `explorer.py` the run and its model's operations, `images.py`
images in and out of the API, `static.py` the page (`static/`)."""

from vaekit.serve.app import ExplorerServer, make_server
from vaekit.serve.explorer import Explorer

__all__ = ["Explorer", "ExplorerServer", "make_server"]
