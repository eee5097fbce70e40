"""Loss terms as pure ``keras.ops`` functions (METHODS.md §1, §3.2, §4.3).

Conventions of the upstream code are kept where they change the weighting: "Σ_p mean_b" means
sum over pixels/dimensions of the batch mean, which is what ``K.sum(K.mean(...), 0)`` computed.
"""

import keras
from keras import ops

EPS = 1e-7


def sum_of_batch_mean_squares(a, b):
    """Σ_p mean_b (a - b)^2 over all non-batch axes."""
    diff = ops.reshape(a - b, (ops.shape(a)[0], -1))
    return ops.sum(ops.mean(ops.square(diff), axis=0))


def mixture_kl(z_mean, z_log_var, y, class_means):
    """Σ_d mean_b Σ_k y_k KL(N(mu, sigma^2) || N(m_k, 1)) per dimension (METHODS.md §3.2)."""
    diff = ops.expand_dims(z_mean, 1) - ops.expand_dims(class_means, 0)          # (b, K, d)
    log_var = ops.expand_dims(z_log_var, 1)
    kl = 0.5 * (-1.0 - log_var + ops.square(diff) + ops.exp(log_var))           # (b, K, d)
    weighted = ops.sum(ops.expand_dims(y, -1) * kl, axis=1)                     # (b, d)
    return ops.sum(ops.mean(weighted, axis=0))


def categorical_neg_entropy(y):
    """Σ_k mean_b y_k log y_k: KL(y || uniform) up to a constant, as in bojone's ELBO."""
    return ops.sum(ops.mean(y * ops.log(y + EPS), axis=0))


def clustering_vae_loss(x, x_hat, z_mean, z_log_var, y, class_means, rec_weight=2.5):
    """ALRDC's module loss L_vae = w·Σ_p mean_b (x - x̂)^2 + L_KL + L_cat (METHODS.md §4.3a).

    Returns ``(total, reconstruction, kl, cat)``.
    """
    rec = sum_of_batch_mean_squares(x, x_hat)
    kl = mixture_kl(z_mean, z_log_var, y, class_means)
    cat = categorical_neg_entropy(y)
    return rec_weight * rec + kl + cat, rec, kl, cat


def attack_loss(x_hat, x_hat_adv, y, y_adv, z_mean, z_mean_adv, rec_weight=2.5,
                assign_weight=0.04, shift_weight=1.0):
    """ALRDC's attack objective L_att (METHODS.md §4.3b), minimised by the adversary.

    The assignment term is a *sum* over the batch of <y_i, y'_i>, as upstream (about 40x the batch
    mean for batches of 1000). Returns ``(total, reconstruction, agreement, shift)``.
    """
    rec = sum_of_batch_mean_squares(x_hat, x_hat_adv)
    agreement = ops.sum(y * y_adv)
    shift = sum_of_batch_mean_squares(z_mean_adv, z_mean)
    return rec_weight * rec + assign_weight * agreement + shift_weight * shift, rec, agreement, \
        shift


def jsd_mi_loss(critic, anchor, context, shuffled_context):
    """BCE/JS mutual-information estimator with row-shuffled negatives (METHODS.md §3.2, §4.3c).

    -mean[ log T([a, c]) + log(1 - T([a, shuffle(c)])) ] for a sigmoid critic T.
    """
    positive = critic(ops.concatenate([anchor, context], axis=-1))
    negative = critic(ops.concatenate([anchor, shuffled_context], axis=-1))
    return -ops.mean(ops.log(positive + EPS) + ops.log(1.0 - negative + EPS))


def shuffle_rows(x, seed_generator):
    """Permute the rows of ``x`` (upstream's ``K.tf.random_shuffle``)."""
    return keras.random.shuffle(x, axis=0, seed=seed_generator)


def squared_distance(x, y=None):
    """Dense matrix of squared Euclidean distances ||x_i - y_j||^2 (clipped at 0)."""
    y = x if y is None else y
    x_sq = ops.sum(ops.square(x), axis=1, keepdims=True)
    y_sq = ops.sum(ops.square(y), axis=1, keepdims=True)
    return ops.maximum(x_sq - 2.0 * ops.matmul(x, ops.transpose(y)) + ops.transpose(y_sq), 0.0)


def knn_affinity(x, n_nbrs, scale=None, scale_nbr=None, local_scale=False):
    """Symmetric Gaussian kNN affinity of a batch (METHODS.md §1.1).

    Each row keeps its ``n_nbrs`` smallest squared distances (itself included). With ``scale``
    given, a_ij = exp(-D_ij / (2 scale^2)); otherwise the global median (or, with
    ``local_scale``, the per-row value) of the ``scale_nbr``-th smallest squared distance is
    used as 2·s in the denominator. The scattered matrix is symmetrised: W = (W + W^T) / 2.
    """
    dist = squared_distance(x)
    neg_top, idx = ops.top_k(-dist, k=n_nbrs)
    nn_dist = -neg_top                                                          # (m, n_nbrs)
    if scale is not None:
        vals = ops.exp(-nn_dist / (2.0 * scale**2))
    else:
        if scale_nbr is None or scale_nbr > n_nbrs:
            raise ValueError("scale_nbr must be given and at most n_nbrs when scale is None")
        kth = nn_dist[:, scale_nbr - 1]
        if local_scale:
            vals = ops.exp(-nn_dist / (2.0 * ops.expand_dims(kth, 1) + EPS))
        else:
            m = ops.shape(kth)[0]
            median = ops.top_k(kth, k=m // 2)[0][-1]                            # (m//2)-th largest
            vals = ops.exp(-nn_dist / (2.0 * median + EPS))
    m = ops.shape(x)[0]
    affinity = ops.sum(ops.one_hot(idx, m) * ops.expand_dims(vals, -1), axis=1)  # dense scatter
    return (affinity + ops.transpose(affinity)) / 2.0


def spectral_loss(affinity, y, normaliser=1.0):
    """Σ_ij W_ij ||y_i - y_j||^2 / c (METHODS.md §1.3)."""
    return ops.sum(affinity * squared_distance(y)) / normaliser


def euclidean_distance(a, b):
    """Row-wise Euclidean distance, clamped at sqrt(EPS) as upstream."""
    return ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=1), EPS))


def contrastive_loss(labels, distance, m_pos=0.05, m_neg=1.0):
    """Siamese loss mean[t max(d - m_pos, 0)^2 + (1 - t) max(m_neg - d, 0)^2] (METHODS.md §1.6).

    SpectralNet compiles it with m_pos = 0.05 and m_neg = 1 (the function's own defaults there,
    0.2 / 1, are not what runs).
    """
    labels = ops.cast(labels, distance.dtype)
    positive = ops.square(ops.maximum(distance - m_pos, 0.0))
    negative = ops.square(ops.maximum(m_neg - distance, 0.0))
    return ops.mean(labels * positive + (1.0 - labels) * negative)


# ---------------------------------------------------------------------- self-training targets

def dec_target(q):
    """DEC's target p_ij = (q_ij^2 / f_j) / Σ_j' (q_ij'^2 / f_j'), f_j = Σ_i q_ij (METHODS.md §6.2).

    NumPy in, NumPy out: targets are computed on the whole set between refreshes.
    """
    import numpy as np

    q = np.asarray(q, dtype=np.float64)
    weight = q**2 / q.sum(axis=0)
    return (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)


def boosted_target(q, alpha=2.0, balance=False):
    """DBC's boosted target r_ij ∝ q_ij^alpha, normalised per sample (METHODS.md §6.3 (ii)).

    ``alpha > 1`` sharpens high scores and suppresses low ones; ``balance=True`` also divides by
    the cluster frequency f_j as DEC does (``alpha=2, balance=True`` is exactly ``dec_target``).
    """
    import numpy as np

    if alpha <= 0:
        raise ValueError(f"the boosting factor alpha must be positive, got {alpha}")
    q = np.asarray(q, dtype=np.float64)
    weight = q**alpha
    if balance:
        weight = weight / q.sum(axis=0)
    return (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)


def kl_target_loss(p, q):
    """mean_b Σ_j p_ij log(p_ij / q_ij): KL(P || Q) per sample, as Keras' ``kld`` loss."""
    p = ops.clip(p, EPS, 1.0)
    q = ops.clip(q, EPS, 1.0)
    return ops.mean(ops.sum(p * ops.log(p / q), axis=1))
