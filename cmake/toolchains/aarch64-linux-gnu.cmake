# SPDX-License-Identifier: MIT
# Cross-compile libapf for 64-bit Arm Linux with Debian's gcc-aarch64-linux-gnu, and run the
# tests under qemu-user (CTest prefixes each test with CMAKE_CROSSCOMPILING_EMULATOR).
# Check for arm64 comes from Debian multiarch: dpkg --add-architecture arm64 &&
# apt-get install check:arm64 (which brings libc6:arm64, the C library the tests run on).
# qemu runs them against that multiarch root ("/"), not the cross toolchain's sysroot: with
# `-L /usr/aarch64-linux-gnu`, qemu-user 7.2 hangs in pthread_create here.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# pkg-config: the arm64 .pc files of Debian multiarch, not the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
