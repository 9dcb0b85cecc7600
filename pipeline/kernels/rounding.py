"""Arithmetic that rounds the same way on the CPU and on a CUDA GPU: ``fma`` and ``mul``.

TA-Lib 0.8 computes its EMA, MACD and ATR steps with C's ``fma()``, and every other step as a
separate multiply and add, each rounded. Matching it to the last bit on both targets needs:

``fma(a, b, c)``  ``a * b + c`` rounded once. Compiled (``@njit`` or ``numba.cuda``) it lowers
                  to LLVM's ``llvm.fma.f64``: a hardware FMA where the processor has one (every
                  CUDA GPU does) and a correctly rounded library call elsewhere.
``mul(a, b)``     ``a * b`` rounded on its own, never fused into a following add. On the CPU a
                  plain multiply is never fused (LLVM contracts only when told to), but NVVM
                  compiles with ``-fma=1`` by default and would fuse ``x * y + z`` into one
                  FMA, which rounds once and changes the last bit; there ``mul`` lowers to
                  ``llvm.nvvm.mul.rn.d`` (PTX ``mul.rn.f64``), which neither NVVM nor ptxas
                  fuses. Every float product in a GPU-compiled kernel is written ``mul(a, b)``;
                  ``tests/pipeline/kernels/test_ptx.py`` checks the PTX for plain ``mul.f64``.

Called from plain Python (Numba's CUDA simulator runs kernels that way) ``fma`` computes the
exact value with fractions and rounds once, and ``mul`` is ``a * b``. Kernels must not use
``fastmath``, which would reorder and fuse freely.
"""

from __future__ import annotations

import math
from fractions import Fraction

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def fma(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c  # NaN and infinities come out as fma's would
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def mul(a: float, b: float) -> float:
    """``a * b``, rounded on its own (never fused with an add, on any target)."""
    return a * b


def _doubles(context, builder, signature, args):
    return [
        context.cast(builder, value, kind, types.float64)
        for value, kind in zip(args, signature.args, strict=True)
    ]


@intrinsic
def _llvm_fma(typingctx, a, b, c):
    sig = types.float64(a, b, c)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fn, _doubles(context, builder, signature, args))

    return sig, codegen


@intrinsic
def _rounded_mul(typingctx, a, b):
    sig = types.float64(a, b)

    def codegen(context, builder, signature, args):
        x, y = _doubles(context, builder, signature, args)
        if not builder.module.triple.startswith("nvptx"):
            return builder.fmul(x, y)  # CPU: LLVM never fuses an fmul without 'contract'
        double = ir.DoubleType()
        fnty = ir.FunctionType(double, [double, double])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.nvvm.mul.rn.d")
        return builder.call(fn, [x, y])

    return sig, codegen


@overload(fma)
def _fma_compiled(a, b, c):
    def impl(a, b, c):
        return _llvm_fma(a, b, c)

    return impl


@overload(mul)
def _mul_compiled(a, b):
    def impl(a, b):
        return _rounded_mul(a, b)

    return impl
