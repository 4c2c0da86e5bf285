"""Build step of the native CPU kernels (everything else is declared in pyproject.toml).

The multi-scale deformable attention core (``kernels/ms_deform_attn/native/msda_cpu.cc``) and
Swin's window attention core (``kernels/window_attention/native/window_attention_cpu.cc``) have
C++ implementations for CPUs, built into one XLA FFI handler library that
``kernels.native_library`` loads with ctypes and each kernel registers with ``jax.ffi``. It needs
only the FFI headers that jaxlib ships, so jaxlib is a build requirement.
"""

import os

from setuptools import Extension, setup


def _ffi_include_dir() -> str:
    import jaxlib

    return os.path.join(os.path.dirname(jaxlib.__file__), "include")


setup(
    ext_modules=[
        Extension(
            "kernels.native._cpu_kernels",
            sources=[
                "kernels/ms_deform_attn/native/msda_cpu.cc",
                "kernels/window_attention/native/window_attention_cpu.cc",
                "kernels/window_attention/native/window_attention_avx512.cc",
                "kernels/native/cpu_features.cc",
            ],
            include_dirs=[_ffi_include_dir(), "kernels"],
            depends=[
                "kernels/native/parallel_for.h",
                "kernels/native/cpu_features.h",
                "kernels/ms_deform_attn/native/msda_units.inc",
                "kernels/window_attention/native/window_attention_common.h",
            ],
            language="c++",
            # Without a compiler the package still installs; "auto" then runs the references.
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
