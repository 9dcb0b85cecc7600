"""A correctly rounded fused multiply-add for jitted kernels.

TA-Lib 0.8 computes its EMA, MACD and ATR steps with C's ``fma()``; matching it to the last bit
needs the same single rounding. ``fma(a, b, c)`` lowers to LLVM's ``llvm.fma.f64``, which is a
hardware FMA where the CPU has one and a correctly rounded library call elsewhere: the same bits
either way. Kernels must not use ``fastmath``, which would fuse other operations too.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (only callable from jitted code)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fn, args)

    return sig, codegen
