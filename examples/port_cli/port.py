"""The port: the same MLP in Flax NNX, and a port with a porting bug (a gelu for a relu)."""

import jax
from flax import nnx


class MLP(nnx.Module):
    """`hk.nets.MLP([16, 3])` on 4 inputs in NNX: relu between the layers, not after."""

    def __init__(self, rngs: nnx.Rngs, activation=jax.nn.relu):
        self.layers = nnx.List([nnx.Linear(4, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)])
        self.activation = activation

    def __call__(self, x):
        return self.layers[1](self.activation(self.layers[0](x)))


PORT = MLP(nnx.Rngs(0))
BUGGY = MLP(nnx.Rngs(0), activation=jax.nn.gelu)
