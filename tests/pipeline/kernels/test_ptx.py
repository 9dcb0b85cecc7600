"""The GPU kernels compile for a real GPU (sm_90: H100, H200) and keep the CPU's rounding.

No GPU is needed: numba-cuda and NVVM (the ``numba-cuda[cu12]`` test dependency) compile each
kernel of :mod:`pipeline.kernels.gpu` to PTX, and the PTX is read for what would change the
last bit against the CPU. NVVM compiles with ``-fma=1`` by default, which fuses ``x * y + z``
into one FMA (one rounding instead of two); the kernels prevent that with
:func:`pipeline.kernels.rounding.mul`. The checks:

* no unrounded ``mul.f64`` is left (ptxas may fuse one with a following add), and
* the kernel holds as many ``fma.rn.f64`` as when NVVM is told ``-fma=0``: only the explicit
  ``fma()`` calls of the EMA, MACD and ATR steps, which TA-Lib makes too.

ptxas then assembles each kernel for sm_90, as the driver would at its first launch. The
simulator test (``test_gpu.py``) checks the same kernels' results bit for bit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import types as pytypes
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip(
    "numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]' brings it)"
)

from numba import cuda, float64, int8, int64, types

from pipeline.kernels import gpu
from pipeline.kernels.rounding import mul

CC = (9, 0)  # Hopper
F = types.Array(float64, 1, "C")
B = types.Array(int64, 1, "C")
C = types.Array(int8, 1, "C")  # hygiene reason codes, flags
I = int64  # noqa: E741
# Every kernel's argument types, in the order its launcher passes them.
SIGNATURES = {
    "_sma": (F, B, F, I),
    "_ema": (F, B, F, I),
    "_macd": (F, B, F, F, F, I, I, I, F, F),
    "_rsi": (F, B, F, I),
    "_atr": (F, F, F, B, F, I),
    "_directional": (F, F, F, B, F, F, F, I),
    "_bbands": (F, B, F, F, F, I, float64),
    "_extremes": (F, F, B, F, F, I, F, F),
    "_stoch": (F, B, F, F, F, F, I, I, I, F, F),
    "_willr": (F, B, F, F, F, I),
    "_cci": (F, F, F, B, F, I, F),
    "_roc": (F, B, F, I),
    "_obv": (F, F, B, F),
    "_mfi": (F, F, F, F, B, F, I),
    "_out_of_order": (B, B, C),
    "_reasons": (B, F, F, F, F, F, B, C, types.Array(int64, 2, "C")),
    "_compact": (C, B, B, F, F),
}
DATES_COMPACT = (C, B, B, B, B)  # _compact also moves the int64 dates
EXPLICIT_FMA = {"_ema", "_macd", "_atr"}  # kernels whose steps call fma() (TA-Lib's C fma)
F64_OP = re.compile(r"\b((?:mul|add|sub|fma|div|sqrt)(?:\.\w+)*\.f64)\b")


@pytest.fixture(scope="module")
def compile_ptx():
    """``compile_ptx(function, argument_types, fma=True)`` → the function compiled as a kernel
    for sm_90, as PTX text (``fma=False`` compiles with NVVM's ``-fma=0``).

    Device functions (the shared ``*_segment`` definitions) ask the CUDA driver for the
    current device's compute capability; with no driver here, that lookup answers sm_90.
    """
    from numba.cuda import api, dispatcher
    from numba.cuda.cudadrv import nvvm

    patch = pytest.MonkeyPatch()
    device = pytypes.SimpleNamespace(compute_capability=CC)
    patch.setattr(dispatcher, "get_current_device", lambda: device)
    patch.setattr(api, "get_current_device", lambda: device)
    compile_ir = nvvm.compile_ir
    try:
        cuda.compile_ptx(lambda out: None, (F,), cc=CC)
    except Exception as exc:  # NVVM or libdevice not found
        patch.undo()
        pytest.skip(f"NVVM cannot compile here ({type(exc).__name__}: {exc})")

    def run(function, argument_types: tuple, fma: bool = True) -> str:
        if not fma:
            patch.setattr(nvvm, "compile_ir", lambda ir, **o: compile_ir(ir, **o, fma=False))
        try:
            ptx, _ = cuda.compile_ptx(function, argument_types, cc=CC)
        finally:
            patch.setattr(nvvm, "compile_ir", compile_ir)
        return ptx

    yield run
    patch.undo()


def f64_ops(ptx: str) -> Counter:
    return Counter(F64_OP.findall(ptx))


def ptxas() -> str | None:
    """NVIDIA's PTX assembler: on the PATH, or from the nvidia-cuda-nvcc wheel."""
    found = shutil.which("ptxas")
    if found is None:
        try:
            from nvidia import cuda_nvcc
        except ImportError:
            return None
        wheel = Path(next(iter(cuda_nvcc.__path__))) / "bin" / "ptxas"
        found = str(wheel) if wheel.exists() else None
    return found


KERNELS = [*sorted(SIGNATURES.items()), ("_compact", DATES_COMPACT)]


def test_every_kernel_is_checked() -> None:
    kernels = {n for n, v in vars(gpu).items() if type(v).__name__ == "CUDADispatcher"}
    assert kernels == set(SIGNATURES)


@pytest.mark.parametrize(("name", "argument_types"), KERNELS)
def test_kernel_compiles_without_fused_products(compile_ptx, name: str, argument_types) -> None:
    kernel = getattr(gpu, name).py_func
    ops = f64_ops(compile_ptx(kernel, argument_types))
    assert ops["mul.f64"] == 0, f"{name}: unrounded products {dict(ops)}"
    unfused = f64_ops(compile_ptx(kernel, argument_types, fma=False))
    assert ops["fma.rn.f64"] == unfused["fma.rn.f64"], dict(ops)
    assert (ops["fma.rn.f64"] > 0) == (name in EXPLICIT_FMA), dict(ops)


@pytest.mark.parametrize(("name", "argument_types"), KERNELS)
def test_kernel_assembles_for_sm_90(compile_ptx, tmp_path, name: str, argument_types) -> None:
    """ptxas turns the PTX into sm_90 machine code: what the driver does at the first launch."""
    assembler = ptxas()
    if assembler is None:
        pytest.skip("ptxas is not installed (the nvidia-cuda-nvcc wheel brings it)")
    source = tmp_path / f"{name}.ptx"
    source.write_text(compile_ptx(getattr(gpu, name).py_func, argument_types))
    done = subprocess.run(
        [assembler, "--gpu-name", "sm_90", "--verbose", str(source), "-o", str(tmp_path / "k")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"Used \d+ registers", done.stderr + done.stdout), done.stderr


def plain_multiply_add(x, out):
    out[0] = x[0] * x[1] + x[2]


def rounded_multiply_add(x, out):
    out[0] = mul(x[0], x[1]) + x[2]


def test_the_check_sees_contraction(compile_ptx) -> None:
    """Written ``x * y + z``, NVVM fuses the product into an FMA; ``mul`` keeps it apart."""
    fused = f64_ops(compile_ptx(plain_multiply_add, (F, F)))
    assert fused["fma.rn.f64"] == 1 and fused["mul.f64"] == 0
    assert f64_ops(compile_ptx(plain_multiply_add, (F, F), fma=False))["fma.rn.f64"] == 0
    kept = f64_ops(compile_ptx(rounded_multiply_add, (F, F)))
    assert kept["fma.rn.f64"] == 0 and kept["mul.rn.f64"] == 1
