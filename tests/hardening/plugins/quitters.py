"""Plug-ins (the pure-JAX bias adder) that end the program where the tool calls them."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from shared.models.bias_adder import JaxBiasAdder


class Escape(BaseException):
    """A `BaseException` of the plug-in's own, not an `Exception`."""


def exit_in_factory(config: Any) -> Any:
    sys.exit(0)


def base_exception_in_factory(config: Any) -> Any:
    raise Escape("out")


@dataclasses.dataclass(frozen=True)
class ExitInApply(JaxBiasAdder):
    name: str = "exit_in_apply"

    def apply(self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None) -> Any:
        sys.exit(0)


@dataclasses.dataclass(frozen=True)
class InterruptInApply(JaxBiasAdder):
    name: str = "interrupt_in_apply"

    def apply(self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None) -> Any:
        raise KeyboardInterrupt
