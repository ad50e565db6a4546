# The C extension is built by cffi (API, out-of-line mode) as part of `pip install .`:
# setuptools runs csrc/build_wire.py, which compiles csrc/*.c into ustack.wire._wire.
from setuptools import setup

setup(cffi_modules=["csrc/build_wire.py:ffibuilder"])
