"""What keeps a large step below the memory bound: its passes over batch-sized buffers.

At the large shapes a training step is memory-bound: its time is the bytes it moves over
the machine's bandwidth. XLA's own estimate (`cost_analysis()["bytes accessed"]`) gives the
bytes; the optimised HLO says where they come from. Each kernel of the entry computation
(a fusion, a dot, a custom call) reads its operands and writes its results once, so counting
the batch-sized buffers that kernels read and write counts the passes over the batch, the
number that a different way of writing the step could lower.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# Entry-computation instructions that run no kernel of their own.
_NO_KERNEL = frozenset(
    {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all", "iota"}
)
_ARRAY = re.compile(r"\b[a-z]+\d*\[([\d,]*)\]")
_OPERAND = re.compile(r"%([\w.\-]+)")


@dataclass(frozen=True)
class Passes:
    """The kernels of one compiled step and their traffic in batch-sized buffers.

    **Fields:**

    - `kernels`: instructions of the entry computation that run a kernel.
    - `batch_reads`, `batch_writes`: reads and writes of buffers with at least as many
      elements as one input batch (the batch itself, activations, their gradients).
    - `batch_bytes`: the bytes of those reads and writes together.
    - `bytes_accessed`: XLA's estimate of every byte the step reads and writes.
    - `fusions`: the kernels that are fusions (the rest: dots, custom calls, copies, ...).
    """

    kernels: int
    batch_reads: int
    batch_writes: int
    batch_bytes: int
    bytes_accessed: float
    fusions: int


def _arrays(type_text: str) -> list[int]:
    """Element counts of the arrays in an HLO type (`f32[4096,8]{1,0}` or a tuple of them)."""
    return [math.prod(int(d) for d in dims.split(",") if d) for dims in _ARRAY.findall(type_text)]


def _split_type(rest: str) -> tuple[str, str]:
    """`"(f32[4], f32[]) fusion(...)"` -> (the type, the rest)."""
    if not rest.startswith("("):
        type_text, _, tail = rest.partition(" ")
        return type_text, tail
    depth = 0
    for i, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return rest[: i + 1], rest[i + 2 :]
    return rest, ""


def entry_instructions(hlo_text: str) -> list[tuple[str, str, str, list[str]]]:
    """`(name, type, opcode, operands)` for each instruction of the HLO module's entry."""
    lines = hlo_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ENTRY"))
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("}"):
            break
        left, sep, rest = line.strip().removeprefix("ROOT ").partition(" = ")
        if not sep:
            continue
        type_text, tail = _split_type(rest)
        opcode, _, args = tail.partition("(")
        operands = _OPERAND.findall(args.split("),", 1)[0])
        out.append((left.lstrip("%"), type_text, opcode.strip(), operands))
    return out


def passes(hlo_text: str, batch_elements: int, bytes_accessed: float, itemsize: int = 4) -> Passes:
    """Count a compiled step's kernels and its batch-sized reads and writes.

    **Arguments:**

    - `hlo_text`: the optimised HLO (`jitted.lower(...).compile().as_text()`).
    - `batch_elements`: the elements of one input batch; buffers at least this large count.
    - `bytes_accessed`: XLA's estimate, passed through.
    - `itemsize`: bytes per element of the batch-sized buffers (float32).
    """
    instructions = entry_instructions(hlo_text)
    sizes = {name: _arrays(type_text) for name, type_text, _, _ in instructions}
    kernels = fusions = reads = writes = 0
    traffic = 0
    for _, type_text, opcode, operands in instructions:
        if opcode in _NO_KERNEL:
            continue
        kernels += 1
        fusions += opcode == "fusion"
        for operand in operands:
            big = [n for n in sizes.get(operand, []) if n >= batch_elements]
            reads += len(big)
            traffic += sum(big) * itemsize
        big = [n for n in _arrays(type_text) if n >= batch_elements]
        writes += len(big)
        traffic += sum(big) * itemsize
    return Passes(kernels, reads, writes, traffic, bytes_accessed, fusions)


def analyse(compiled: Any, batch_elements: int) -> Passes | None:
    """Count a compiled step's passes (`None`: this backend gives no cost analysis or HLO).

    **Arguments:**

    - `compiled`: a `jax.stages.Compiled` (`jitted.lower(...).compile()`), or `None`.
    - `batch_elements`: as in [`passes`][].
    """
    if compiled is None:
        return None
    try:
        cost = compiled.cost_analysis()
        text = compiled.as_text()
    except Exception:  # not every backend and wrapper exposes its compiled program
        return None
    if not cost or not text or "ENTRY" not in text:
        return None
    return passes(text, batch_elements, float(cost["bytes accessed"]))
