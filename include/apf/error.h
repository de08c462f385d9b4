/* SPDX-License-Identifier: MIT */
/**
 * @file error.h
 * @brief libapf's error codes: negative, and equal to the Linux errno values.
 *
 * Every libapf function that can fail returns 0 (or a count) on success and one of these
 * negative codes on failure, so a Linux embedder can pass them on as `-errno` unchanged.
 * One list (APF_ERRNO_MAP) generates the enum, apf_strerror() and apf_err_name(), so the
 * three can never disagree. Freestanding: no `<errno.h>` needed.
 */
#ifndef APF_ERROR_H
#define APF_ERROR_H

#include "apf/export.h"

/**
 * @brief The error list: `XX(name, value, message)`, value equal to Linux's `-errno`.
 * Append-only.
 */
#define APF_ERRNO_MAP(XX)                                                                      \
    XX(EPERM, -1, "operation not permitted")                                                   \
    XX(ENOENT, -2, "no such entry")                                                            \
    XX(EINTR, -4, "interrupted")                                                               \
    XX(EIO, -5, "input/output error")                                                          \
    XX(E2BIG, -7, "argument too big")                                                          \
    XX(EAGAIN, -11, "try again")                                                               \
    XX(ENOMEM, -12, "out of memory")                                                           \
    XX(EFAULT, -14, "bad address")                                                             \
    XX(EBUSY, -16, "busy")                                                                     \
    XX(EEXIST, -17, "already exists")                                                          \
    XX(ENODEV, -19, "no such device")                                                          \
    XX(EINVAL, -22, "invalid argument")                                                        \
    XX(ENOSPC, -28, "no space left")                                                           \
    XX(ERANGE, -34, "out of range")                                                            \
    XX(ENOSYS, -38, "not implemented")                                                         \
    XX(EPROTO, -71, "protocol error")                                                          \
    XX(EOVERFLOW, -75, "value too large")                                                      \
    XX(EOPNOTSUPP, -95, "operation not supported")                                             \
    XX(ECONNRESET, -104, "connection reset by peer")                                           \
    XX(ETIMEDOUT, -110, "timed out")                                                           \
    XX(EALREADY, -114, "already in progress")                                                  \
    XX(ESTALE, -116, "stale token")                                                            \
    XX(ECANCELED, -125, "cancelled")

/** @brief libapf's error codes (all negative). */
enum apf_errno {
/** @cond INTERNAL */
#define APF__ERRNO_ENUM(name, value, msg) APF_##name = (value),
    APF_ERRNO_MAP(APF__ERRNO_ENUM)
#undef APF__ERRNO_ENUM
    /** @endcond */
};

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief A short English description of an error code.
 * Context: any (freestanding, no allocation).
 * @param err A libapf error code (negative); 0 gives "success".
 * @return A static string; "unknown error" for a value not in APF_ERRNO_MAP. Never NULL.
 */
APF_API const char *apf_strerror(int err);

/**
 * @brief The symbolic name of an error code, e.g. "EINVAL".
 * Context: any (freestanding, no allocation).
 * @param err A libapf error code (negative); 0 gives "OK".
 * @return A static string; "UNKNOWN" for a value not in APF_ERRNO_MAP. Never NULL.
 */
APF_API const char *apf_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* APF_ERROR_H */
