"""The built-in models, one package each (`shared.MODELS`, the registry, lists them).

Each holds its spec (`SPEC`), config, data, loss, tolerances and docs sections; the
frameworks' implementations live in the `impl_*` packages, and `shared/_registry.py` lists
both. Nothing here is imported until a model is used.
"""
