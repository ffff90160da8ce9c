"""Build of cydrop's Cython kernels (metadata lives in pyproject.toml).

Environment switches:
  CYDROP_DEBUG=1     bounds/wraparound checks on, -O0 -g: a debug build for tests
  CYDROP_NO_OPENMP=1 build without OpenMP (kernels then run on one thread)
"""
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

from Cython.Build import cythonize

DEBUG = os.environ.get("CYDROP_DEBUG", "") == "1"

OPENMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def openmp_flags(compiler):
    """-fopenmp if this C compiler builds and links an OpenMP program, else None."""
    if os.environ.get("CYDROP_NO_OPENMP", "") == "1":
        return None
    flag = "/openmp" if compiler.compiler_type == "msvc" else "-fopenmp"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        compiler.link_executable(objs, "omp_test", output_dir=tmp, extra_postargs=[flag])
        subprocess.run([os.path.join(tmp, "omp_test")], check=True)
        return flag
    except Exception as exc:  # any failure means: no usable OpenMP
        print(f"cydrop: building without OpenMP ({exc})", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Adds optimisation and OpenMP flags once the compiler is known."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            opt = ["/Od", "/Zi"] if DEBUG else ["/O2"]
        else:
            # -fno-math-errno: nothing reads errno, and without it GCC calls
            # libm's sqrt one element at a time instead of vectorizing it
            # -ffp-contract=off: no a * b + c fused into an FMA, so the AVX2 and
            # AVX-512 clones of a loop round exactly as the baseline does
            # (src/dispatch.h) and results do not depend on the CPU
            opt = (["-O0", "-g"] if DEBUG else ["-O3"]) + ["-fno-math-errno", "-ffp-contract=off"]
        omp = openmp_flags(self.compiler)
        # cydrop's thread pool (src/pool.h) runs on POSIX threads
        threads = [] if msvc else ["-pthread"]
        for ext in self.extensions:
            ext.extra_compile_args += opt + threads + ([omp] if omp else [])
            ext.extra_link_args += threads + ([omp] if omp and not msvc else [])
        super().build_extensions()


def extension(name, **kwargs):
    import numpy

    return Extension(
        f"cydrop.{name}",
        [f"src/{name}.pyx"],
        include_dirs=["src", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("CYDROP_DEBUG_BUILD", "1")] if DEBUG else []),  # cydrop._openmp.debug_build()
        **kwargs,
    )


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
}

setup(
    ext_modules=cythonize(
        [extension("_openmp"), extension("_pool"), extension("_dropout"), extension("_dense"), extension("_optim"),
         extension("_fused_net"), extension("_concrete")],
        include_path=["src"],
        compiler_directives=directives,
        # generated C per build mode, so switching CYDROP_DEBUG regenerates it
        build_dir="build/cython-debug" if DEBUG else "build/cython",
    ),
    cmdclass={"build_ext": BuildExt},
)
