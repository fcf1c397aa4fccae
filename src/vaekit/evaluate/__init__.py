"""Honest evaluation: the importance-weighted -log p(x) in bounded memory, and what the code holds.

    iwae.py       -L_k of a batch (IWAE eq. 8) in chunks and tiles, on `vaekit.vae.prob`
    latents.py    active units, a linear probe on the latent means
    run.py        a run's test set evaluated under the published protocol, written to eval.json
    eval_json.py  eval.json read and checked against the run (fields, sums, bounds)
    table.py      eval.json as the table `vaekit eval` prints
"""
