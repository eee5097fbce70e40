"""Network builders (functional ``keras.Model`` factories) shared by the methods.

- ``build_conv_encoder`` / ``build_conv_decoder``: the DSCDAN/ALRDC VAE networks (METHODS.md §3.1,
  §4.1) for any image shape; ``filters=16`` gives the upstream 32-32-64-64 stack.
- ``build_mlp_autoencoder``: the DEC-style d-500-500-2000-10 autoencoder (METHODS.md §2.1, §6.2).
"""

import math

import keras
from keras import layers


def _dec_init(seed):
    # DEC-keras: VarianceScaling(1/3, fan_in, uniform)
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform",
                                              seed=seed)


def build_mlp_autoencoder(input_dim, hidden_dims=(500, 500, 2000), latent_dim=10,
                          output_activation="linear", seed=None):
    """Dense autoencoder: ReLU hidden layers, linear code, mirrored decoder.

    Args:
        input_dim: number of input features (784 for MNIST).
        hidden_dims: widths of the encoder's hidden layers; the decoder mirrors them.
        latent_dim: width of the linear code.
        output_activation: ``"linear"`` as DEC-keras, or ``"sigmoid"`` as VaDE.
        seed: seed of the weight initialisers.

    Returns:
        ``(encoder, decoder, autoencoder)`` functional models.
    """
    layer_count = [0]

    def dense(units, activation, name):
        # layer j (in creation order) is initialised with seed 100 * seed + j
        init_seed = None if seed is None else seed * 100 + layer_count[0]
        layer_count[0] += 1
        return layers.Dense(units, activation=activation, name=name,
                            kernel_initializer=_dec_init(init_seed))

    x_in = keras.Input((input_dim,), name="input")
    h = x_in
    for i, units in enumerate(hidden_dims):
        h = dense(units, "relu", f"encoder_{i}")(h)
    code = dense(latent_dim, None, f"encoder_{len(hidden_dims)}")(h)
    encoder = keras.Model(x_in, code, name="encoder")

    z_in = keras.Input((latent_dim,), name="code")
    h = z_in
    for i, units in enumerate(reversed(hidden_dims)):
        h = dense(units, "relu", f"decoder_{i}")(h)
    out = dense(input_dim, output_activation, f"decoder_{len(hidden_dims)}")(h)
    decoder = keras.Model(z_in, out, name="decoder")

    autoencoder = keras.Model(x_in, decoder(encoder(x_in)), name="autoencoder")
    return encoder, decoder, autoencoder


def conv_feature_shape(input_shape, filters=16):
    """Shape of the encoder's last feature map: two stride-2 'same' convolutions."""
    h, w = input_shape[0], input_shape[1]
    return (math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2), 4 * filters)


def build_conv_encoder(input_shape=(28, 28, 1), latent_dim=64, filters=16, name="encoder"):
    """DSCDAN/ALRDC encoder: 4 convolutions (LeakyReLU 0.2), then Dense to mu and log sigma^2.

    Returns a model ``x -> [z_mean, z_log_var]``.
    """
    x_in = keras.Input(input_shape, name="image")
    h = x_in
    for n_filters, stride in ((2 * filters, 2), (2 * filters, 1), (4 * filters, 2),
                              (4 * filters, 1)):
        h = layers.Conv2D(n_filters, 3, strides=stride, padding="same")(h)
        h = layers.LeakyReLU(0.2)(h)
    h = layers.Flatten()(h)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    return keras.Model(x_in, [z_mean, z_log_var], name=name)


def build_conv_decoder(output_shape=(28, 28, 1), latent_dim=64, filters=16, name="decoder",
                       output_activation="sigmoid"):
    """Mirror of ``build_conv_encoder``: linear Dense, 4 transposed convolutions, sigmoid output
    (``output_activation="linear"`` gives logits, for a Bernoulli likelihood).

    For sizes that are not multiples of 4 the upsampled map is cropped to ``output_shape``.
    """
    fh, fw, fc = conv_feature_shape(output_shape, filters)
    z_in = keras.Input((latent_dim,), name="z")
    h = layers.Dense(fh * fw * fc)(z_in)
    h = layers.Reshape((fh, fw, fc))(h)
    for n_filters, stride in ((4 * filters, 1), (4 * filters, 2), (2 * filters, 1),
                              (2 * filters, 2)):
        h = layers.Conv2DTranspose(n_filters, 3, strides=stride, padding="same")(h)
        h = layers.LeakyReLU(0.2)(h)
    h = layers.Conv2DTranspose(output_shape[2], 3, padding="same",
                               activation=output_activation)(h)
    extra_h, extra_w = 4 * fh - output_shape[0], 4 * fw - output_shape[1]
    if extra_h or extra_w:
        h = layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2),
                               (extra_w // 2, extra_w - extra_w // 2)))(h)
    return keras.Model(z_in, h, name=name)


def build_cluster_head(latent_dim, n_clusters, hidden_dims=(1024, 1024, 512), name="cluster_head"):
    """DSCDAN/ALRDC clustering head C: ReLU MLP ending in a K-way softmax."""
    z_in = keras.Input((latent_dim,), name="z_mean")
    h = z_in
    for units in hidden_dims:
        h = layers.Dense(units, activation="relu")(h)
    return keras.Model(z_in, layers.Dense(n_clusters, activation="softmax")(h), name=name)


def build_adversary(input_shape, latent_dim, hidden_dims=(1024, 512), name="adversary"):
    """ALRDC's adversary A (upstream ``Advsior``): an all-linear map from pixels to a latent
    perturbation delta(x) (METHODS.md §4.1)."""
    x_in = keras.Input(input_shape, name="image")
    h = layers.Flatten()(x_in)
    for units in hidden_dims:
        h = layers.Dense(units)(h)
    return keras.Model(x_in, layers.Dense(latent_dim)(h), name=name)


def build_mi_critic(input_dim, hidden_dims=(64, 64), name="mi_critic"):
    """Sigmoid critic T of the JS mutual-information estimators. ALRDC's defence critic has
    input width latent + H*W*C + K (858 on MNIST), computed here rather than hard-coded."""
    v_in = keras.Input((input_dim,), name="pair")
    h = v_in
    for units in hidden_dims:
        h = layers.Dense(units, activation="relu")(h)
    return keras.Model(v_in, layers.Dense(1, activation="sigmoid")(h), name=name)


def build_fcae(input_shape=(28, 28, 1), code_channels=10, filters=(32, 64, 128), seed=None,
                code_layout="map"):
    """DBC's fully convolutional autoencoder (METHODS.md §6.4; an assumed layout, not the paper's
    table): conv 5/2, conv 5/2, conv 3/2 (valid where the map allows), then a linear code
    convolution; BN + ReLU after every convolution except the last of each path; the decoder
    mirrors it with transposed convolutions and ends in a sigmoid, cropped to the input size.

    ``code_layout="map"`` (METHODS.md §6.4): a 1x1 code convolution, so the code is a map (3x3x10
    on MNIST, flattened to 90-d by the clustering models). ``"vector"`` (ours): the code
    convolution spans the whole map ('valid'), so the code is 1x1x``code_channels``, still with
    no dense layer; the decoder starts with the transposed convolution of the same size.

    Returns ``(encoder, decoder, autoencoder)``.
    """
    if code_layout not in ("map", "vector"):
        raise ValueError(f"code_layout must be 'map' or 'vector', got {code_layout!r}")
    f1, f2, f3 = filters
    h_in, w_in, channels = input_shape
    count = [0]

    def init():
        count[0] += 1
        return keras.initializers.GlorotUniform(None if seed is None else seed * 100 + count[0])

    def block(h, layer):
        h = layer(h)
        h = layers.BatchNormalization()(h)
        return layers.ReLU()(h)

    x_in = keras.Input(input_shape, name="image")
    h = block(x_in, layers.Conv2D(f1, 5, strides=2, padding="same", kernel_initializer=init()))
    h = block(h, layers.Conv2D(f2, 5, strides=2, padding="same", kernel_initializer=init()))
    third_padding = "valid" if min(h.shape[1], h.shape[2]) >= 3 else "same"
    map_h, map_w = h.shape[1], h.shape[2]
    h = block(h, layers.Conv2D(f3, 3, strides=2, padding=third_padding,
                               kernel_initializer=init()))
    code_kernel = 1 if code_layout == "map" else (h.shape[1], h.shape[2])
    code = layers.Conv2D(code_channels, code_kernel, name="code", kernel_initializer=init())(h)
    encoder = keras.Model(x_in, code, name="fcae_encoder")

    c_in = keras.Input(tuple(code.shape[1:]), name="code_map")
    h = block(c_in, layers.Conv2DTranspose(f3, code_kernel, kernel_initializer=init()))
    h = block(h, layers.Conv2DTranspose(f2, 3, strides=2, padding=third_padding,
                                        kernel_initializer=init()))
    if (h.shape[1], h.shape[2]) != (map_h, map_w):  # odd map sizes: match the encoder's map
        h = layers.Resizing(map_h, map_w)(h)
    h = block(h, layers.Conv2DTranspose(f1, 5, strides=2, padding="same",
                                        kernel_initializer=init()))
    h = layers.Conv2DTranspose(channels, 5, strides=2, padding="same", activation="sigmoid",
                               kernel_initializer=init())(h)
    extra_h, extra_w = h.shape[1] - h_in, h.shape[2] - w_in
    if extra_h or extra_w:
        h = layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2),
                               (extra_w // 2, extra_w - extra_w // 2)))(h)
    decoder = keras.Model(c_in, h, name="fcae_decoder")
    autoencoder = keras.Model(x_in, decoder(encoder(x_in)), name="fcae")
    return encoder, decoder, autoencoder


# ---------------------------------------------------------------------- DCGAN nets (§5.2, §9.2)

def _gan_init():
    # a new initializer per layer: its seed is drawn when the layer is built, after the
    # estimator's set_seed (one module-level instance drew its seed at import time, so every
    # GAN layer shared it whatever random_state, and the import shifted Python's RNG)
    return keras.initializers.RandomNormal(0.0, 0.02)


def _gan_bn():
    # InfoGAN's BN: epsilon 1e-5, momentum 0.1 in the "new = 0.9 old + 0.1 batch" sense (§9.2)
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)


def build_gan_generator(output_shape, noise_dim, n_clusters, name="generator"):
    """Dense 1024 BN ReLU -> Dense (h/4 w/4 128) BN ReLU -> ConvT 64 /2 BN ReLU -> ConvT C /2
    sigmoid, cropped to ``output_shape`` (METHODS.md §5.2)."""
    h_out, w_out, channels = output_shape
    fh, fw = math.ceil(h_out / 4), math.ceil(w_out / 4)
    z_in = keras.Input((noise_dim + n_clusters,), name="latent")  # any latent split
    h = layers.Dense(1024, kernel_initializer=_gan_init())(z_in)
    h = layers.ReLU()(_gan_bn()(h))
    h = layers.Dense(fh * fw * 128, kernel_initializer=_gan_init())(h)
    h = layers.ReLU()(_gan_bn()(layers.Reshape((fh, fw, 128))(h)))
    h = layers.Conv2DTranspose(64, 4, strides=2, padding="same", kernel_initializer=_gan_init())(h)
    h = layers.ReLU()(_gan_bn()(h))
    h = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="sigmoid",
                               kernel_initializer=_gan_init())(h)
    extra_h, extra_w = 4 * fh - h_out, 4 * fw - w_out
    if extra_h or extra_w:
        h = layers.Cropping2D(((extra_h // 2, extra_h - extra_h // 2),
                               (extra_w // 2, extra_w - extra_w // 2)))(h)
    return keras.Model(z_in, h, name=name)


def build_gan_trunk(input_shape, batch_norm=False, leak=0.2, name="trunk"):
    """DCGAN discriminator trunk: Conv 64 /2 -> Conv 128 /2 -> Dense 1024, LeakyReLU; with
    ``batch_norm`` BN after the second convolution and the dense layer (InfoGAN, §9.2; ClusterGAN
    has none). Returns ``x -> 1024 features``."""
    x_in = keras.Input(input_shape, name="image")
    h = layers.LeakyReLU(leak)(layers.Conv2D(64, 4, strides=2, padding="same",
                                             kernel_initializer=_gan_init())(x_in))
    h = layers.Conv2D(128, 4, strides=2, padding="same", kernel_initializer=_gan_init())(h)
    h = layers.LeakyReLU(leak)(_gan_bn()(h) if batch_norm else h)
    h = layers.Dense(1024, kernel_initializer=_gan_init())(layers.Flatten()(h))
    h = layers.LeakyReLU(leak)(_gan_bn()(h) if batch_norm else h)
    return keras.Model(x_in, h, name=name)


def build_gan_trunk_model(input_shape, out_units, name, batch_norm=False, leak=0.2):
    """The trunk followed by a linear Dense ``out_units``: ClusterGAN's critic (1 unit) and
    encoder (noise_dim + K units)."""
    trunk = build_gan_trunk(input_shape, batch_norm, leak, name=f"{name}_trunk")
    return keras.Model(trunk.input, layers.Dense(out_units)(trunk.output), name=name)
