"""The reference: `hk.nets.MLP([16, 3])`, as it ships in Haiku (relu between the layers)."""

import haiku as hk

MODEL = hk.transform(lambda x: hk.nets.MLP([16, 3])(x))
