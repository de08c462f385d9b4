# SPDX-License-Identifier: MIT
# Debian packages with CPack's DEB generator, from the install components of
# cmake/ApfInstall.cmake:
#   libapf-proto0.2, libapf-guest0.2, libapf-host0.2, libapf-loopback0.2  one per SONAME
#   libapf-dev    headers, the .so links, static archives if built, pkg-config and CMake files
#   apf-tools     apf-postcopy and apf-trace-check (with man pages)
# Build them with one command: bash cmake/packaging/build-debs.sh (see README.md).
#
# Why CPack and not debian/: the packages come from the same install rules the tree already
# tests (install-and-consume), with no second description of the file lists to keep in
# sync, and the build needs no debhelper. The price is what debhelper would add by itself:
# the copyright and changelog files and the man pages are installed here.
if(NOT _apf_top OR APF_FREESTANDING OR NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  return()
endif()

set(APF_DEB_RELEASE 1)
set(APF_DEB_VERSION "${PROJECT_VERSION}-${APF_DEB_RELEASE}")
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_apf_sov "${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}")
else()
  set(_apf_sov "${PROJECT_VERSION_MAJOR}")
endif()

# Components -> packages.
set(_apf_runtime)
get_property(_apf_pkg_libs GLOBAL PROPERTY APF_LIBRARIES)
foreach(_lib IN LISTS _apf_pkg_libs)
  get_target_property(_out ${_lib} OUTPUT_NAME) # apf-host
  list(APPEND _apf_runtime lib${_out})
  set(_apf_pkg_lib${_out} "lib${_out}${_apf_sov}") # libapf-host0.2
endforeach()
set(_apf_pkg_dev libapf-dev)
set(_apf_pkg_tools apf-tools)
set(_apf_components ${_apf_runtime} dev tools)

# Per package: copyright, changelog (Debian policy 12.5 / 12.7).
configure_file(${PROJECT_SOURCE_DIR}/cmake/packaging/changelog.in
  ${PROJECT_BINARY_DIR}/packaging/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nf -k ${PROJECT_BINARY_DIR}/packaging/changelog.Debian
  RESULT_VARIABLE _gz)
if(NOT _gz EQUAL 0)
  message(FATAL_ERROR "packaging: gzip failed")
endif()
foreach(_comp IN LISTS _apf_components)
  set(_pkg ${_apf_pkg_${_comp}})
  install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${_pkg} RENAME copyright COMPONENT ${_comp})
  install(FILES ${PROJECT_BINARY_DIR}/packaging/changelog.Debian.gz
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${_pkg} COMPONENT ${_comp})
endforeach()
foreach(_comp IN LISTS _apf_components)
  set(PKG ${_apf_pkg_${_comp}})
  file(READ ${PROJECT_SOURCE_DIR}/cmake/packaging/lintian-overrides.in _ovr)
  if(_comp IN_LIST _apf_runtime)
    file(READ ${PROJECT_SOURCE_DIR}/cmake/packaging/lintian-overrides-lib.in _ovr_lib)
    string(APPEND _ovr "${_ovr_lib}")
  endif()
  string(REPLACE "@PKG@" "${PKG}" _ovr "${_ovr}")
  file(WRITE ${PROJECT_BINARY_DIR}/packaging/lintian/${PKG} "${_ovr}")
  install(FILES ${PROJECT_BINARY_DIR}/packaging/lintian/${PKG}
    DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides COMPONENT ${_comp})
endforeach()
foreach(_man apf-postcopy apf-trace-check)
  execute_process(COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/cmake/packaging/${_man}.1
    OUTPUT_FILE ${PROJECT_BINARY_DIR}/packaging/${_man}.1.gz)
  install(FILES ${PROJECT_BINARY_DIR}/packaging/${_man}.1.gz
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT tools)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libapf)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "The libapf authors")
set(CPACK_PACKAGE_CONTACT "libapf maintainers <maintainers@libapf.invalid>")
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_COMPONENTS_ALL ${_apf_components})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${APF_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://libapf.invalid/")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Our own libraries, for dpkg-shlibdeps (the packages' dependencies on each other are
# declared below).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS
  ${PROJECT_BINARY_DIR}/src/proto ${PROJECT_BINARY_DIR}/src/guest ${PROJECT_BINARY_DIR}/src/host
  ${PROJECT_BINARY_DIR}/src/loopback)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(_apf_desc_libapf-proto "wire-level parts shared by host and guest
This package holds libapf-proto: error strings, version, the protocol trace
format and its conformance checker.")
set(_apf_desc_libapf-guest "guest runtime
This package holds libapf-guest: a freestanding runtime (sleep table,
wake-before-wait) with backends for KVM x86 and arm64 (and the ready ring).")
set(_apf_desc_libapf-host "hypervisor engine and transports
This package holds libapf-host: the engine (tokens, one fetch per frame,
throttle, wake-all, migration state, worker pool) and the KVM x86 and arm64
transports.")
set(_apf_desc_libapf-loopback "host and guest in one process
This package holds libapf-loopback: both halves joined over the real
transports, for simulators, conformance tests and embedders' own tests.")
foreach(_comp IN LISTS _apf_runtime)
  string(TOUPPER ${_comp} _C)
  set(CPACK_DEBIAN_${_C}_PACKAGE_NAME ${_apf_pkg_${_comp}})
  set(CPACK_DEBIAN_${_C}_PACKAGE_SECTION libs)
  set(CPACK_DEBIAN_${_C}_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/packaging/triggers)
  set(CPACK_DEBIAN_${_C}_DESCRIPTION "APF protocol library - ${_apf_desc_${_comp}}

libapf implements the asynchronous page fault (APF) protocol between a
hypervisor and its guests.")
endforeach()
# Library dependencies between the packages (CPack adds "(= version)").
set(CPACK_COMPONENT_LIBAPF-GUEST_DEPENDS libapf-proto)
set(CPACK_COMPONENT_LIBAPF-HOST_DEPENDS libapf-proto)
set(CPACK_COMPONENT_LIBAPF-LOOPBACK_DEPENDS libapf-host libapf-guest libapf-proto)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME ${_apf_pkg_dev})
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS ${_apf_runtime})
set(CPACK_DEBIAN_DEV_DESCRIPTION "APF protocol library - development files
Headers, pkg-config files (libapf-host, libapf-guest, libapf-loopback) and
the CMake package (find_package(apf)) for building hypervisors and guest
kernels against libapf, the asynchronous page fault (APF) protocol library.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME ${_apf_pkg_tools})
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_COMPONENT_TOOLS_DEPENDS ${_apf_runtime})
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "APF protocol tools: apf-postcopy, apf-trace-check
apf-postcopy runs a workload on a guest whose memory arrives by post-copy
migration (real userfaultfd faults) with and without asynchronous page
faults; apf-trace-check checks a protocol trace from any implementation.")

include(CPack)
