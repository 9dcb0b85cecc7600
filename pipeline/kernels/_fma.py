"""A correctly rounded fused multiply-add for jitted kernels, CPU and CUDA alike.

TA-Lib 0.8 computes its EMA, MACD and ATR steps with C's ``fma()``; matching it to the last bit
needs the same single rounding. In compiled code (``@njit`` or ``numba.cuda``) ``fma(a, b, c)``
lowers to LLVM's ``llvm.fma.f64``: a hardware FMA where the processor has one (every CUDA GPU
does) and a correctly rounded library call elsewhere, the same bits either way. Called from
plain Python (Numba's CUDA simulator runs kernels that way) it computes the exact value with
fractions and rounds once. Kernels must not use ``fastmath``, which would fuse other operations.
"""

from __future__ import annotations

import math
from fractions import Fraction

from llvmlite import ir
from numba import types
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


@intrinsic
def _llvm_fma(typingctx, a, b, c):
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fn, args)

    return sig, codegen


@overload(fma)
def _fma_compiled(a, b, c):
    def impl(a, b, c):
        return _llvm_fma(a, b, c)

    return impl
