# SPDX-License-Identifier: MIT
# Compiler settings and the library-building helper shared by src/*/CMakeLists.txt.

# --- warnings ------------------------------------------------------------------------------
set(APF_WARNINGS
  -Wall -Wextra -Wshadow -Wconversion -Wstrict-prototypes -Wmissing-prototypes
  -Wold-style-definition -Wpointer-arith -Wundef -Wvla -Wformat=2)
set(APF_TEST_WARNINGS -Wall -Wextra -Wshadow -Wundef -Wvla -Wformat=2)
if(APF_WERROR)
  list(APPEND APF_WARNINGS -Werror)
  list(APPEND APF_TEST_WARNINGS -Werror)
endif()

# Library code: the strict set. Tests and examples: apf_target_test_warnings().
function(apf_target_warnings target)
  target_compile_options(${target} PRIVATE ${APF_WARNINGS})
endfunction()
function(apf_target_test_warnings target)
  target_compile_options(${target} PRIVATE ${APF_TEST_WARNINGS})
endfunction()

# --- sanitizers ----------------------------------------------------------------------------
if(APF_SANITIZE STREQUAL "address")
  set(_apf_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(APF_SANITIZE STREQUAL "thread")
  set(_apf_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT APF_SANITIZE STREQUAL "")
  message(FATAL_ERROR "APF_SANITIZE must be '', 'address' or 'thread' (got '${APF_SANITIZE}')")
endif()
if(_apf_san)
  add_compile_options(${_apf_san})
  add_link_options(${_apf_san})
endif()

# --- freestanding ---------------------------------------------------------------------------
# Only the compiler's own headers (stdint.h, stddef.h, stdbool.h, stdarg.h, stdatomic.h) are
# reachable: -nostdinc hides libc's, and the compiler's include directory is put back.
function(apf_setup_freestanding)
  if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-resource-dir
      OUTPUT_VARIABLE _res OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(_inc "${_res}/include")
  else()
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=include
      OUTPUT_VARIABLE _inc OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  if(NOT EXISTS "${_inc}/stdint.h")
    message(FATAL_ERROR "freestanding: no compiler include directory with stdint.h at '${_inc}'")
  endif()
  set(_flags -ffreestanding -fno-stack-protector -nostdinc -isystem "${_inc}")
  # aarch64: gcc (10+) calls libgcc helpers (__aarch64_ldadd4_relax ...) for atomics unless
  # told to inline them; a kernel has no libgcc. (LSE kernels may add -march=armv8.1-a.)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -dumpmachine
    OUTPUT_VARIABLE _target OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_target MATCHES "^(aarch64|arm64)")
    include(CheckCCompilerFlag)
    check_c_compiler_flag(-mno-outline-atomics APF_HAVE_NO_OUTLINE_ATOMICS)
    if(APF_HAVE_NO_OUTLINE_ATOMICS)
      list(APPEND _flags -mno-outline-atomics)
    endif()
  endif()
  set(APF_FREESTANDING_FLAGS ${_flags} CACHE INTERNAL "")
endfunction()

# --- libraries ------------------------------------------------------------------------------
# apf_add_library(<part> SOURCES ... [DEPS <apf parts>] [LIBS <other libs>] [FREESTANDING])
#
# Builds, from one set of objects:
#   apf_<part>           the public library (shared or static per BUILD_SHARED_LIBS),
#                        output name apf-<part>, alias apf::<part>, installed and exported;
#   apf_<part>_internal  a static archive of the same objects for white-box tests, which may
#                        call internal (hidden) functions.
function(apf_add_library part)
  cmake_parse_arguments(A "FREESTANDING" "" "SOURCES;DEPS;LIBS" ${ARGN})
  set(objs apf_${part}_objs)
  add_library(${objs} OBJECT ${A_SOURCES})
  set_target_properties(${objs} PROPERTIES
    POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  target_include_directories(${objs}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  apf_target_warnings(${objs})
  # Calls between the library's own exported functions (a transport calling
  # apf_host_chan_read, say) go direct instead of through the PLT: nobody may interpose them.
  include(CheckCCompilerFlag)
  check_c_compiler_flag(-fno-semantic-interposition APF_HAVE_NO_SEM_INTERPOSITION)
  if(APF_HAVE_NO_SEM_INTERPOSITION)
    target_compile_options(${objs} PRIVATE -fno-semantic-interposition)
  endif()
  if(A_FREESTANDING AND APF_FREESTANDING)
    target_compile_options(${objs} PRIVATE ${APF_FREESTANDING_FLAGS})
  endif()
  foreach(dep IN LISTS A_DEPS)
    target_include_directories(${objs} PRIVATE $<TARGET_PROPERTY:apf_${dep},INTERFACE_INCLUDE_DIRECTORIES>)
  endforeach()
  if(A_LIBS)
    target_link_libraries(${objs} PRIVATE ${A_LIBS})
  endif()

  add_library(apf_${part} $<TARGET_OBJECTS:${objs}>)
  add_library(apf::${part} ALIAS apf_${part})
  # SONAME policy: while the major version is 0, every minor release may change the ABI,
  # so the SONAME carries major.minor (libapf-host.so.0.2); from 1.0 on, the major alone.
  if(PROJECT_VERSION_MAJOR EQUAL 0)
    set(_soversion ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  else()
    set(_soversion ${PROJECT_VERSION_MAJOR})
  endif()
  set_target_properties(apf_${part} PROPERTIES
    OUTPUT_NAME apf-${part}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${_soversion}
    C_VISIBILITY_PRESET hidden
    EXPORT_NAME ${part})
  target_include_directories(apf_${part} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  foreach(dep IN LISTS A_DEPS)
    target_link_libraries(apf_${part} PUBLIC apf_${dep})
  endforeach()
  if(A_LIBS)
    target_link_libraries(apf_${part} PUBLIC ${A_LIBS})
  endif()
  # Symbol versioning (shared, GNU ld / lld): one version node per release, libapf.map.
  if(BUILD_SHARED_LIBS AND NOT APPLE)
    target_link_options(apf_${part} PRIVATE
      "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/libapf.map")
    set_property(TARGET apf_${part} APPEND PROPERTY LINK_DEPENDS
      "${PROJECT_SOURCE_DIR}/cmake/libapf.map")
  endif()

  if(NOT APF_FREESTANDING)
    add_library(apf_${part}_internal STATIC $<TARGET_OBJECTS:${objs}>)
    target_include_directories(apf_${part}_internal PUBLIC
      ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
    foreach(dep IN LISTS A_DEPS)
      target_link_libraries(apf_${part}_internal PUBLIC apf_${dep}_internal)
    endforeach()
    if(A_LIBS)
      target_link_libraries(apf_${part}_internal PUBLIC ${A_LIBS})
    endif()
  endif()
  set_property(GLOBAL APPEND PROPERTY APF_LIBRARIES apf_${part})
endfunction()
