# SPDX-License-Identifier: MIT
# Cross-compile libapf for IBM Z (s390x, big-endian) Linux with Debian's gcc-s390x-linux-gnu, and run the
# tests under qemu-user (CTest prefixes each test with CMAKE_CROSSCOMPILING_EMULATOR).
# Check for s390x comes from Debian multiarch: dpkg --add-architecture s390x &&
# apt-get install check:s390x (which brings libc6:s390x, the C library the tests run on).
# qemu runs them against that multiarch root ("/"), not the cross toolchain's sysroot: with
# `-L /usr/s390x-linux-gnu`, qemu-user 7.2 hangs in pthread_create here.
#
#   cmake -S . -B build-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/s390x-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(CMAKE_C_COMPILER s390x-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-s390x)
set(CMAKE_FIND_ROOT_PATH /usr/s390x-linux-gnu /usr/lib/s390x-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# pkg-config: the s390x .pc files of Debian multiarch, not the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/s390x-linux-gnu/pkgconfig:/usr/share/pkgconfig")
