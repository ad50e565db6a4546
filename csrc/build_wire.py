"""cffi build script (API, out-of-line mode): compiles csrc/*.c into the module ustack.wire._wire.

Run by setuptools during `pip install .` (see setup.py); never by hand.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "wire_cdef.h").read_text())
ffibuilder.set_source(
    "ustack.wire._wire",
    '#include "wire.h"',
    # setuptools wants paths relative to the project root (where setup.py runs).
    sources=[f"csrc/{path.name}" for path in sorted(HERE.glob("*.c"))],
    include_dirs=["csrc"],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
