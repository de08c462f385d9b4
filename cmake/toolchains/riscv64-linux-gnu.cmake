# SPDX-License-Identifier: MIT
# Cross-compile libapf for 64-bit RISC-V Linux with Debian's gcc-riscv64-linux-gnu and run the
# tests under qemu-riscv64 against the cross toolchain's C library (libc6-dev-riscv64-cross).
# Debian ships no riscv64 Check: configure with -DAPF_CHECK_SHIM=ON (tests/support/check_shim,
# the subset of Check the suites use) and build the suites you run:
#
#   cmake -S . -B build-riscv64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/riscv64-linux-gnu.cmake \
#         -DAPF_CHECK_SHIM=ON -DAPF_BUILD_EXAMPLES=OFF -DAPF_BUILD_DOCS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_C_COMPILER riscv64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-riscv64 -L /usr/riscv64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/riscv64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
