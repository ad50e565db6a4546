"""cffi build script (API, out-of-line mode): compiles csrc/*.c into the module ustack.wire._wire.

Run by setuptools during `pip install .` (see setup.py); never by hand.

The declarations cffi exposes to Python are the part of csrc/wire.h between the "cdef begin" and
"cdef end" markers, so the C header is the one place structs, enums and prototypes are written.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent


def cdef_text() -> str:
    header = (HERE / "wire.h").read_text()
    begin = header.index("/* --- cdef begin --- */")
    end = header.index("/* --- cdef end --- */")
    return header[begin:end]


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "ustack.wire._wire",
    '#include "wire.h"',
    # setuptools wants paths relative to the project root (where setup.py runs).
    sources=[f"csrc/{path.name}" for path in sorted(HERE.glob("*.c"))],
    include_dirs=["csrc"],
    depends=[f"csrc/{path.name}" for path in sorted(HERE.glob("*.h"))],
    # -O3 lets the compiler vectorise the checksum loop (csrc/checksum.c).
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
