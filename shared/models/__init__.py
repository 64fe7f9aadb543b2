"""The built-in models, one package each: `bias_adder` and `mlp_bn`.

Each holds its spec (`SPEC`), config, data, loss, tolerances and docs sections; the
frameworks' implementations live in the `impl_*` packages, and `shared/_registry.py` lists
both. Nothing here is imported until a model is used.
"""
