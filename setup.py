"""Build step of the native CPU kernels (everything else is declared in pyproject.toml).

The multi-scale deformable attention core has a C++ implementation for CPUs
(``kernels/ms_deform_attn/native/msda_cpu.cc``), an XLA FFI handler library that
``kernels.ms_deform_attn.cpu`` loads with ctypes and registers with ``jax.ffi``. It needs only
the FFI headers that jaxlib ships, so jaxlib is a build requirement.
"""

import os

from setuptools import Extension, setup


def _ffi_include_dir() -> str:
    import jaxlib

    return os.path.join(os.path.dirname(jaxlib.__file__), "include")


setup(
    ext_modules=[
        Extension(
            "kernels.ms_deform_attn.native._msda_cpu",
            sources=["kernels/ms_deform_attn/native/msda_cpu.cc"],
            include_dirs=[_ffi_include_dir()],
            language="c++",
            # Without a compiler the package still installs; "auto" then runs the reference.
            optional=True,
            extra_compile_args=[
                "-std=c++17",
                "-O3",
                "-ffp-contract=off",
                "-Wno-attributes",
                "-Wno-return-type",
            ],
        )
    ]
)
