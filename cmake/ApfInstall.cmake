# SPDX-License-Identifier: MIT
# Install: headers, libraries, the CMake package (apfConfig.cmake + version file) and the
# pkg-config files generated from pkgconfig/*.pc.in.
include(CMakePackageConfigHelpers)

# Components (the Debian packages of cmake/ApfPackaging.cmake): each shared library's
# runtime file in "libapf-<part>", everything for building against libapf in "dev".
get_property(_apf_libs GLOBAL PROPERTY APF_LIBRARIES)
foreach(_lib IN LISTS _apf_libs)
  get_target_property(_apf_out ${_lib} OUTPUT_NAME)
  install(TARGETS ${_lib}
    EXPORT apfTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib${_apf_out} NAMELINK_COMPONENT dev
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT lib${_apf_out})
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/apf DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT dev FILES_MATCHING PATTERN "*.h")

set(APF_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/apf)
install(EXPORT apfTargets NAMESPACE apf:: DESTINATION ${APF_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/apfConfig.cmake.in
  ${PROJECT_BINARY_DIR}/apfConfig.cmake INSTALL_DESTINATION ${APF_CMAKE_DIR})
# 0.x: minor versions may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/apfConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/apfConfig.cmake ${PROJECT_BINARY_DIR}/apfConfigVersion.cmake
  DESTINATION ${APF_CMAKE_DIR} COMPONENT dev)

# pkg-config: the prefix is computed relative to the .pc file, so an install with
# `cmake --install --prefix DIR` anywhere is consumable without editing.
set(APF_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH APF_PC_TO_PREFIX "/prefix/${APF_PC_DIR}" "/prefix")
string(REGEX REPLACE "/$" "" APF_PC_TO_PREFIX "${APF_PC_TO_PREFIX}")
set(APF_PC_PREFIX "\${pcfiledir}/${APF_PC_TO_PREFIX}")
foreach(_pc IN ITEMS libapf-guest libapf-host libapf-loopback)
  if(NOT _pc STREQUAL "libapf-guest" AND APF_FREESTANDING)
    continue()
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/pkgconfig/${_pc}.pc.in ${PROJECT_BINARY_DIR}/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${_pc}.pc DESTINATION ${APF_PC_DIR} COMPONENT dev)
endforeach()
