/* SPDX-License-Identifier: MIT */
/**
 * @file version.h
 * @brief The library's version (not the wire protocol's: see #APF_PROTO_VERSION).
 *
 * This header is the single source of the version number: CMake reads the three
 * `APF_VERSION_*` lines below when it configures the project.
 */
#ifndef APF_VERSION_H
#define APF_VERSION_H

#include <stdint.h>

#include "apf/export.h"

#define APF_VERSION_MAJOR 0 /**< Incompatible API changes. */
#define APF_VERSION_MINOR 2 /**< Backwards-compatible additions (while MAJOR is 0: any change). */
#define APF_VERSION_PATCH 0 /**< Fixes. */

/** The version packed as `major << 16 | minor << 8 | patch`, comparable as an integer. */
#define APF_VERSION_HEX ((APF_VERSION_MAJOR << 16) | (APF_VERSION_MINOR << 8) | APF_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief The version of the library linked at run time.
 *
 * Compare it with #APF_VERSION_HEX, the version the caller was compiled against.
 * Context: any.
 * @return `major << 16 | minor << 8 | patch`.
 */
APF_API uint32_t apf_version(void);

/**
 * @brief The version of the library linked at run time, as text.
 * Context: any.
 * @return A static string such as "0.1.0"; never NULL.
 */
APF_API const char *apf_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* APF_VERSION_H */
