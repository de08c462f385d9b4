/* SPDX-License-Identifier: MIT */
/**
 * @file export.h
 * @brief Symbol visibility for libapf's public functions.
 *
 * The libraries are compiled with `-fvisibility=hidden`; every public function is marked
 * with `APF_API` so that it, and only it, is exported from the shared objects.
 */
#ifndef APF_EXPORT_H
#define APF_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
/** Marks a function as part of libapf's exported ABI. */
#define APF_API __attribute__((visibility("default")))
#else
#define APF_API
#endif

#endif /* APF_EXPORT_H */
