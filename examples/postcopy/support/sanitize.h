/* SPDX-License-Identifier: MIT */
/*
 * Which sanitizer this translation unit is built with, as two plain macros.
 *
 * Coroutine switches and SIGBUS handling must tell ASan and TSan about stack changes, and a
 * test that a sanitizer truly cannot run must say so and skip. GCC spells the detection
 * __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang __has_feature(); both end up here.
 */
#ifndef PC_SANITIZE_H
#define PC_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define PC_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define PC_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(PC_ASAN)
#define PC_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(PC_TSAN)
#define PC_TSAN 1
#endif
#endif

#ifndef PC_ASAN
#define PC_ASAN 0
#endif
#ifndef PC_TSAN
#define PC_TSAN 0
#endif

#endif
