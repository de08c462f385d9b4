# SPDX-License-Identifier: MIT
# Build libapf for 32-bit x86 Linux with Debian's gcc-i686-linux-gnu, and run the tests as
# i686 programs. An x86-64 kernel runs them natively (IA-32 emulation, on in Debian's and the
# CI runners' kernels), so no emulator is set. Check for i386 comes from Debian multiarch:
# dpkg --add-architecture i386 && apt-get install check:i386 (which brings libc6:i386).
#
#   cmake -S . -B build-i686 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/i686-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(CMAKE_C_COMPILER i686-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/i686-linux-gnu /usr/lib/i386-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# pkg-config: the i386 .pc files of Debian multiarch, not the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/i386-linux-gnu/pkgconfig:/usr/share/pkgconfig")
