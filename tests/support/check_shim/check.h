/* SPDX-License-Identifier: MIT */
/*
 * A minimal in-tree stand-in for the subset of Check (libcheck) the guest, loopback and
 * transport suites use, for targets where no Check package exists (Debian has no riscv64
 * Check). Built only with -DAPF_CHECK_SHIM=ON (see tests/CMakeLists.txt). Same source for
 * the suites: START_TEST/END_TEST, tcase_* / suite_* / srunner_*, ck_assert_* with Check's
 * messages. Differences: tests run in-process one after the other (no fork: a failing
 * assertion longjmps back to the runner; a crash ends the whole program, which CTest
 * reports as a failure all the same), and per-test timeouts are CTest's alone.
 * Written from Check's documented interface; no Check code.
 */
#ifndef APF_CHECK_SHIM_H
#define APF_CHECK_SHIM_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct TCase TCase;
typedef struct Suite Suite;
typedef struct SRunner SRunner;
typedef void (*ck_shim_fn)(int _i);
typedef void (*SFun)(void);

enum print_output { CK_SILENT, CK_MINIMAL, CK_NORMAL, CK_VERBOSE, CK_ENV };

#define START_TEST(name)                                                                       \
    static void name(int _i)                                                                   \
    {                                                                                          \
        (void)_i;
#define END_TEST }

Suite *suite_create(const char *name);
TCase *tcase_create(const char *name);
void suite_add_tcase(Suite *s, TCase *tc);
void ck_shim_add(TCase *tc, ck_shim_fn fn, const char *name, int start, int end);
#define tcase_add_test(tc, fn) ck_shim_add((tc), (fn), #fn, 0, 1)
#define tcase_add_loop_test(tc, fn, s, e) ck_shim_add((tc), (fn), #fn, (s), (e))
void tcase_add_checked_fixture(TCase *tc, SFun setup, SFun teardown);
void tcase_add_unchecked_fixture(TCase *tc, SFun setup, SFun teardown);
void tcase_set_timeout(TCase *tc, double seconds);
SRunner *srunner_create(Suite *s);
void srunner_run_all(SRunner *sr, enum print_output mode);
int srunner_ntests_failed(SRunner *sr);
void srunner_free(SRunner *sr);

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 3, 4)))
#endif
void ck_shim_fail(const char *file, int line, const char *fmt, ...);

#define ck_assert_msg(expr, ...)                                                               \
    do {                                                                                       \
        if (!(expr))                                                                           \
            ck_shim_fail(__FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)
#define ck_abort_msg(...) ck_shim_fail(__FILE__, __LINE__, __VA_ARGS__)
#define ck_abort() ck_shim_fail(__FILE__, __LINE__, "Completed properly")
#define ck_assert(expr) ck_assert_msg(expr, "Assertion '%s' failed", #expr)

#define CK_SHIM_CMP(T, PRI, X, OP, Y)                                                          \
    do {                                                                                       \
        T ck_x_ = (T)(X);                                                                      \
        T ck_y_ = (T)(Y);                                                                      \
        ck_assert_msg(ck_x_ OP ck_y_, "Assertion '%s' failed: %s == %" PRI ", %s == %" PRI,    \
                      #X " " #OP " " #Y, #X, ck_x_, #Y, ck_y_);                                \
    } while (0)
#define ck_assert_int_eq(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, ==, Y)
#define ck_assert_int_ne(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, !=, Y)
#define ck_assert_int_lt(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, <, Y)
#define ck_assert_int_le(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, <=, Y)
#define ck_assert_int_gt(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, >, Y)
#define ck_assert_int_ge(X, Y) CK_SHIM_CMP(intmax_t, PRIdMAX, X, >=, Y)
#define ck_assert_uint_eq(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, ==, Y)
#define ck_assert_uint_ne(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, !=, Y)
#define ck_assert_uint_lt(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, <, Y)
#define ck_assert_uint_le(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, <=, Y)
#define ck_assert_uint_gt(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, >, Y)
#define ck_assert_uint_ge(X, Y) CK_SHIM_CMP(uintmax_t, PRIuMAX, X, >=, Y)
#define CK_SHIM_PTR(X, OP, Y)                                                                  \
    do {                                                                                       \
        const void *ck_x_ = (const void *)(X);                                                 \
        const void *ck_y_ = (const void *)(Y);                                                 \
        ck_assert_msg(ck_x_ OP ck_y_, "Assertion '%s' failed: %s == %p, %s == %p",             \
                      #X " " #OP " " #Y, #X, ck_x_, #Y, ck_y_);                                \
    } while (0)
#define ck_assert_ptr_eq(X, Y) CK_SHIM_PTR(X, ==, Y)
#define ck_assert_ptr_ne(X, Y) CK_SHIM_PTR(X, !=, Y)
#define ck_assert_ptr_null(X) CK_SHIM_PTR(X, ==, NULL)
#define ck_assert_ptr_nonnull(X) CK_SHIM_PTR(X, !=, NULL)
#define ck_assert_str_eq(X, Y)                                                                 \
    do {                                                                                       \
        const char *ck_x_ = (X);                                                               \
        const char *ck_y_ = (Y);                                                               \
        ck_assert_msg(strcmp(ck_x_, ck_y_) == 0,                                               \
                      "Assertion '%s' failed: %s == \"%s\", %s == \"%s\"", #X " == " #Y, #X,   \
                      ck_x_, #Y, ck_y_);                                                       \
    } while (0)

#endif
