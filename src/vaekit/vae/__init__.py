"""Exercise 2: the VAE. Models return distribution parameters; the probability lives in prob.py.

    prob.py             the only log-densities, KL divergences, the ELBO and IWAE bounds
    base.py             VAEBase and the encoder and decoder pieces every model is built of
    models.py           MLPVAE (the sheet's q_enc, q_mu, q_logvar, p_dec) and ConvVAE; build_model
    hierarchical.py     the VAE with two stochastic layers
    draw.py             what a trained VAE draws, as arrays (reconstructions, samples, latents)
    estimators.py       score-function and pathwise gradient estimators (Ex.2 Q5)
    linear_gaussian.py  a VAE whose log p(x) is known in closed form (Ex.2 Q1 checked exactly)
    backprop.py         the MLP VAE's ELBO or IWAE-K differentiated by hand
"""
