"""`state-rosetta port`: `shared.check_port` from the command line, reported as `compare`."""

from __future__ import annotations

import argparse
import inspect
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.markup import escape

from .._command import UsageError, check_count, check_seed, one_line
from .._inits import ALPHA, compare_inits
from .._port import AlignmentError, check_port
from .._registry import load_user_object
from .._wrap import framework_of, wrap
from ..core import (
    OPTIMIZERS,
    ModelSpec,
    contained,
    json_bytes,
    parse_tolerance,
    write_atomic,
)
from ..report import plain_table
from ._cli import check_reports, parse_loops, report

DESCRIPTION = """\
Cross-validate a port against its reference, each as its framework builds it: train both
from the reference's init in the shared harness, step by step and in lockstep, and report as
`compare` does. REFERENCE and PORT are FILE.py:ATTR or MODULE:ATTR: an hk.transform(_with_state)
result, a Linen nn.Module, an nnx.Module, an Equinox module or (module, eqx.nn.State), a Keras
model, or what shared.wrap(obj, ...) made of one (to pass its keywords, e.g. train_arg). An
ATTR that is none of these but a class or function that takes no arguments (an NNX module's
class with its rngs defaulted, a function that builds an Equinox module from its key) is
called once and must return one. Exit 0 when the port agrees, 1 when it diverges or fails, 2
on bad arguments or data."""


def add_parser(sub: Any, spec: ModelSpec | None) -> None:
    """`port`: the two models, the data, the loss and the training options."""
    c = sub.add_parser(
        "port",
        help="cross-validate a port against its reference, each a framework's own object",
        description=DESCRIPTION,
    )
    c.add_argument("reference", metavar="REFERENCE", help="FILE.py:ATTR or MODULE:ATTR")
    c.add_argument("port", metavar="PORT", help="FILE.py:ATTR or MODULE:ATTR")
    c.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="FILE.npz",
        help="the batches: each array one field of the batch dict, all stacked on one "
        "leading steps axis (x: (steps, batch, ...), y or label: (steps, batch, ...))",
    )
    c.add_argument(
        "--loss",
        required=True,
        metavar="mse|xent|FILE.py:FN",
        help="mse: mean squared error of the output against batch['y'] (same shape); xent: "
        "softmax cross-entropy of the output's logits (last axis) against the integer "
        "batch['label']; or FN(output, batch) -> scalar from FILE.py or MODULE",
    )
    c.add_argument(
        "--inputs",
        default="x",
        metavar="FIELD",
        help="the field of the batch the models see (default: x)",
    )
    c.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N batches (default: all)",
    )
    c.add_argument(
        "--loop",
        type=parse_loops,
        default=("harness",),
        help="comma-separated harness, native (each framework's own loop on the same loss), "
        "scan (default: harness)",
    )
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: sgd)")
    c.add_argument("--lr", type=float, default=0.02, help="learning rate (default: 0.02)")
    c.add_argument("--seed", type=int, default=0, help="seeds the init (default: 0)")
    c.add_argument(
        "--tolerance",
        metavar="T",
        help="bitwise (default), a count of float32 ULPs (4ulp) or an absolute bound (1e-6)",
    )
    c.add_argument(
        "--random", action="store_true", help="pass each step's key to both models (dropout)"
    )
    c.add_argument(
        "--map",
        type=_pair,
        action="append",
        default=[],
        metavar="REF=PORT",
        help="pair a reference leaf with a port leaf where the alignment cannot decide (its "
        "error lists both sides), e.g. params.~.a=params.a; repeatable",
    )
    c.add_argument(
        "--own-init",
        action="store_true",
        help="train nothing: compare the port's own init with the reference's, leaf by "
        "aligned leaf (shapes, means, standard deviations, a Kolmogorov-Smirnov test); exit 1 "
        "if a leaf's distribution differs",
    )
    c.add_argument("--json", type=Path, metavar="PATH", help="write the run as JSON")


def _pair(text: str) -> tuple[str, str]:
    ref, sep, port = text.partition("=")
    if not sep or not ref.strip() or not port.strip():
        raise argparse.ArgumentTypeError(
            f"expected REF=PORT, e.g. params.mlp/~/linear_0.w=params.layers.0.kernel, got {text!r}"
        )
    return ref.strip(), port.strip()


def _mapping(pairs: list[tuple[str, str]]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for ref, port in pairs:
        if ref in mapping:
            raise UsageError(
                f"--map: {ref} is paired twice ({mapping[ref]}, {port}); expected once"
            )
        mapping[ref] = port
    return mapping


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"
"""How an .npy file and a zip archive (an .npz) start."""


def read_batches(path: Path) -> dict[str, np.ndarray]:
    """An `.npz` archive's arrays, read without unpickling, all stacked on one steps axis."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
        # np.load takes anything else for a pickle, and says so: name what it is instead.
        if head.startswith(NPY_MAGIC):
            raise UsageError(f"--data {path}: expected an .npz archive, got one .npy array")
        if not head.startswith(ZIP_MAGIC):
            raise UsageError(f"--data {path}: expected an .npz archive (a zip of .npy arrays)")
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        # ValueError: an object array too, which only unpickling could read.
        raise UsageError(f"--data {path}: cannot read an .npz archive: {e}") from None
    if not arrays:
        raise UsageError(f"--data {path}: the archive holds no arrays; expected one per field")
    shapes = {name: a.shape for name, a in arrays.items()}
    leading = {shape[0] if shape else None for shape in shapes.values()}
    if len(leading) != 1 or None in leading or 0 in leading:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise UsageError(
            f"--data {path}: expected every array stacked on one leading steps axis of at "
            f"least 1; got {listed}"
        )
    return arrays


def _field(path: Path, batches: dict[str, np.ndarray], field: str, what: str) -> np.ndarray:
    if field not in batches:
        raise UsageError(
            f"--data {path}: no field {field!r} ({what}); its fields: {', '.join(batches)}"
        )
    return batches[field]


def mse(output: Any, batch: Any) -> jax.Array:
    """Mean squared error of the output against `batch["y"]`, of the same shape."""
    if jnp.shape(output) != jnp.shape(batch["y"]):  # broadcasting would hide a wrong shape
        raise ValueError(
            f"the output's shape {jnp.shape(output)} is not batch['y']'s "
            f"{jnp.shape(batch['y'])}; expected the same shape"
        )
    return jnp.mean((output - batch["y"]) ** 2)


def xent(logits: Any, batch: Any) -> jax.Array:
    """Softmax cross-entropy of `logits` (classes on the last axis) against the integer
    `batch["label"]` (the logits' shape without that axis)."""
    labels = batch["label"]
    if jnp.shape(logits)[:-1] != jnp.shape(labels):
        raise ValueError(
            f"the logits' shape {jnp.shape(logits)} is not batch['label']'s "
            f"{jnp.shape(labels)} plus a classes axis"
        )
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], axis=-1)
    return -jnp.mean(picked)


LOSSES: dict[str, Callable[[Any, Any], jax.Array]] = {"mse": mse, "xent": xent}
"""The built-in losses, by `--loss` name; `--loss FILE.py:FN` (or `MODULE:FN`) names any other."""


def _checked(loss: Callable[..., Any], name: str) -> Callable[[Any, Any], jax.Array]:
    """`loss`, so that anything it raises (check_port traces it once before training) or a
    non-scalar it returns is bad input naming `--loss` and the callable."""
    called = getattr(loss, "__name__", type(loss).__name__)

    def checked(output: Any, batch: Any) -> jax.Array:
        try:
            with contained(f"--loss {name}"):
                value = loss(output, batch)
        except Exception as e:
            fields = ", ".join(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(
                f"--loss {name}: {called}(output, batch) raised {type(e).__name__}: "
                f"{one_line(str(e))} (the output: "
                f"{jax.tree.structure(output)}; the batch's fields: {fields}); expected "
                "(output, batch) -> scalar"
            ) from None
        if jnp.shape(value) != ():
            raise ValueError(f"--loss {name}: returned shape {jnp.shape(value)}; expected a scalar")
        return jnp.asarray(value)

    checked.__name__ = name
    return checked


def load_loss(text: str, path: Path, batches: dict[str, np.ndarray]) -> Callable[..., Any]:
    """The built-in loss (its field checked in the data) or the user's `FILE.py:FN`."""
    if text == "mse":
        _field(path, batches, "y", "the target of --loss mse")
        return _checked(mse, "mse")
    if text == "xent":
        label = _field(path, batches, "label", "the classes of --loss xent")
        if not np.issubdtype(label.dtype, np.integer):
            raise UsageError(
                f"--data {path}: label is {label.dtype}; --loss xent expects integer classes"
            )
        return _checked(xent, "xent")
    if ":" not in text:
        raise UsageError(f"--loss: expected {', '.join(LOSSES)} or FILE.py:FN, got {text!r}")
    try:
        fn = load_user_object(text, "--loss")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not callable(fn):
        raise UsageError(
            f"--loss {text}: got a {type(fn).__name__}; expected a function (output, batch) "
            "-> scalar"
        )
    return _checked(fn, text)


def _is_factory(obj: Any) -> bool:
    """A class, or a callable of no framework that wrap() did not make: it builds the model.

    A class goes first: an NNX or Equinox module's class has its framework's metaclass.
    """
    if isinstance(obj, type):
        return True
    return (
        callable(obj)
        and not getattr(obj, "wrapped_by_rosetta", False)
        and (framework_of(obj) is None)
    )


def load_model(text: str, label: str) -> Any:
    """REFERENCE or PORT: the object `FILE.py:ATTR` names (a factory of none called once),
    wrapped, so that a bad one is refused naming the argument before anything runs."""
    try:
        obj = load_user_object(text, label)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if _is_factory(obj):
        attr = text.rpartition(":")[2]
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise UsageError(
                f"{label} {text}: {attr} is no model and takes arguments; expected a model "
                "object, or a class or function that takes none and returns one"
            ) from None
        except ValueError:  # no signature to read (a builtin): calling it tells
            pass
        try:
            with contained(f"{label} {text}: calling {attr}()"):
                obj = obj()
        except Exception as e:
            raise UsageError(
                f"{label} {text}: calling {attr}() raised {type(e).__name__}: {e}"
            ) from None
    try:
        return wrap(obj, label=f"{label} {text}")
    except TypeError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta port`: check the arguments, load both models, train, report."""
    check_count("--steps", args.steps)
    check_seed(args.seed)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr: expected a finite learning rate > 0, got {args.lr}")
    check_reports(args.json)
    mapping = _mapping(args.map)
    try:
        tolerance = None if args.tolerance is None else parse_tolerance(args.tolerance)
    except ValueError as e:
        raise UsageError(str(e)) from None
    batches = read_batches(args.data)
    available = len(next(iter(batches.values())))
    if args.steps is not None and args.steps > available:
        raise UsageError(
            f"--steps: expected 1 to {available} (the steps in --data {args.data}), got "
            f"{args.steps}"
        )
    _field(args.data, batches, args.inputs, "what the models see: --inputs names another")
    loss = load_loss(args.loss, args.data, batches)
    reference = load_model(args.reference, "reference")
    port = load_model(args.port, "port")
    field = args.inputs
    if args.own_init:
        return _own_init(args, reference, port, batches, console)
    try:  # contained: a model's sys.exit() is its failure, not this command's end
        with contained(f"{args.reference} against {args.port}"):
            result = check_port(
                reference,
                port,
                data=batches,
                loss=loss,
                inputs=lambda batch: batch[field],
                steps=args.steps,
                optimizer=args.optimizer,
                lr=args.lr,
                seed=args.seed,
                mapping=mapping,
                tolerance=tolerance,
                random=args.random,
                loops=args.loop,
            )
    except AlignmentError as e:  # its hint is check_port's keyword: say the flag too
        raise UsageError(f"{e} (on the command line: one --map REF=PORT per pair)") from None
    except (ValueError, TypeError) as e:  # the loss, a model's own init
        raise UsageError(str(e)) from None
    result.config["data"] = str(args.data)  # where the data came from, as compare records
    return report(result, console, json=args.json)


def _own_init(
    args: argparse.Namespace,
    reference: Any,
    port: Any,
    batches: dict[str, np.ndarray],
    console: Console,
) -> int:
    """`--own-init`: each model's own init, compared leaf by leaf; nothing trains."""
    field = args.inputs
    try:
        with contained(f"{args.reference} against {args.port}"):
            found = compare_inits(
                reference,
                port,
                data=batches,
                inputs=lambda batch: batch[field],
                seed=args.seed,
                mapping=_mapping(args.map),
                random=args.random,
            )
    except AlignmentError as e:
        raise UsageError(f"{e} (on the command line: one --map REF=PORT per pair)") from None
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    rows = [
        (
            r.leaf,
            "x".join(map(str, r.shape)) or "()",
            f"{r.ref_mean:.4g} / {r.ref_std:.4g}",
            f"{r.port_mean:.4g} / {r.port_std:.4g}",
            "" if r.p_value is None else f"{r.p_value:.2g}",
            r.verdict,
        )
        for r in found.rows
    ]
    head = ("leaf", "shape", "reference mean / std", "port mean / std", "KS p", "verdict")
    console.print(plain_table(f"own inits: {found.reference} against {found.port}", head, rows))
    differing = [r.leaf for r in found.differing()]
    if differing:
        console.print(f"INITS DIFFER in {len(differing)} leaves: {', '.join(differing)}")
    else:
        console.print(f"the inits agree in distribution: {len(found.rows)} leaves")
    if args.json is not None:
        payload = {
            "reference": found.reference,
            "port": found.port,
            "alpha": ALPHA,
            "agree": found.agree,
            "leaves": [r.as_json() for r in found.rows],
        }
        write_atomic(args.json, json_bytes(payload))
        console.print(f"wrote {escape(str(args.json))}")
    return 0 if found.agree else 1
