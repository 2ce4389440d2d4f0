"""Value types: sizes that remember their dim names, kinds of values, and types (a kind and a
shape that never mentions batch or time). The shape rules of the op table speak about them."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dim:
    """A size, remembering the dim name it came from (for messages such as `[H=16]`)."""
    value: int
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.name}={self.value}" if self.name and self.name != str(self.value) else str(self.value)


class Kind(enum.Enum):
    FLOAT = "float"
    ONEHOT = "onehot"     # a class index used as a one-hot vector of `classes` entries
    INDEX = "index"       # a class index in [0, classes)


@dataclass(frozen=True)
class Type:
    kind: Kind
    shape: tuple          # tuple[Dim, ...]; never mentions batch or time
    classes: Dim | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dims(self) -> tuple:
        return tuple(d.value for d in self.shape)

    def __str__(self) -> str:
        shape = "[" + ", ".join(str(d) for d in self.shape) + "]"
        return shape if self.kind is Kind.FLOAT else f"{self.kind.value}({self.classes}) {shape}"


def floats(*shape: Dim) -> Type:
    return Type(Kind.FLOAT, tuple(shape))


SCALAR = floats()


class ShapeError(Exception):
    """Raised by a shape rule; the checker adds the position and the expression's text."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint
