# One C++ extension module, no dependencies beyond the CPython C API and the C++17 standard library.
from setuptools import Extension, setup

setup(
    ext_modules=[Extension(
        "sourcemart_kernel",
        sources=["src/sourcemart_kernel.cpp"],
        language="c++",
        # x86-64's baseline (SSE2) only: the wheel must run on any Linux x86-64 host.
        extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
    )],
)
