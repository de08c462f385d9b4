/* SPDX-License-Identifier: MIT */
/* apf/error.h: every APF_E* equals Linux's -errno, and the three views of the list agree. */
#include <errno.h>
#include <string.h>

#include "apf/error.h"
#include "apf_check.h"

START_TEST(test_codes_equal_linux_errno)
{
    ck_assert_int_eq(APF_EPERM, -EPERM);
    ck_assert_int_eq(APF_ENOENT, -ENOENT);
    ck_assert_int_eq(APF_EINTR, -EINTR);
    ck_assert_int_eq(APF_EIO, -EIO);
    ck_assert_int_eq(APF_E2BIG, -E2BIG);
    ck_assert_int_eq(APF_EAGAIN, -EAGAIN);
    ck_assert_int_eq(APF_ENOMEM, -ENOMEM);
    ck_assert_int_eq(APF_EFAULT, -EFAULT);
    ck_assert_int_eq(APF_EBUSY, -EBUSY);
    ck_assert_int_eq(APF_EEXIST, -EEXIST);
    ck_assert_int_eq(APF_ENODEV, -ENODEV);
    ck_assert_int_eq(APF_EINVAL, -EINVAL);
    ck_assert_int_eq(APF_ENOSPC, -ENOSPC);
    ck_assert_int_eq(APF_ERANGE, -ERANGE);
    ck_assert_int_eq(APF_ENOSYS, -ENOSYS);
    ck_assert_int_eq(APF_EPROTO, -EPROTO);
    ck_assert_int_eq(APF_EOVERFLOW, -EOVERFLOW);
    ck_assert_int_eq(APF_EOPNOTSUPP, -EOPNOTSUPP);
    ck_assert_int_eq(APF_ECONNRESET, -ECONNRESET);
    ck_assert_int_eq(APF_ETIMEDOUT, -ETIMEDOUT);
    ck_assert_int_eq(APF_EALREADY, -EALREADY);
    ck_assert_int_eq(APF_ESTALE, -ESTALE);
    ck_assert_int_eq(APF_ECANCELED, -ECANCELED);
}
END_TEST

/* Walks the X-macro list itself, so a code added later is covered without editing here. */
START_TEST(test_every_listed_code_has_name_and_message)
{
    int n = 0;
#define CHECK_ONE(name, value, msg)                                                            \
    ck_assert_int_lt((value), 0);                                                              \
    ck_assert_str_eq(apf_err_name(value), #name);                                              \
    ck_assert_str_eq(apf_strerror(value), msg);                                                \
    n++;
    APF_ERRNO_MAP(CHECK_ONE)
#undef CHECK_ONE
    ck_assert_int_eq(n, 23);
}
END_TEST

START_TEST(test_codes_are_distinct)
{
    static const int codes[] = {
#define CODE(name, value, msg) value,
        APF_ERRNO_MAP(CODE)
#undef CODE
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_int_ne(codes[i], codes[j]);
}
END_TEST

START_TEST(test_success_and_unknown_values)
{
    ck_assert_str_eq(apf_strerror(0), "success");
    ck_assert_str_eq(apf_err_name(0), "OK");
    ck_assert_str_eq(apf_strerror(-3), "unknown error"); /* ESRCH: not in the list */
    ck_assert_str_eq(apf_err_name(-3), "UNKNOWN");
    ck_assert_str_eq(apf_strerror(22), "unknown error"); /* positive errno is not an APF code */
    ck_assert_str_eq(apf_err_name(-100000), "UNKNOWN");
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("codes");
    tcase_add_test(tc, test_codes_equal_linux_errno);
    tcase_add_test(tc, test_every_listed_code_has_name_and_message);
    tcase_add_test(tc, test_codes_are_distinct);
    tcase_add_test(tc, test_success_and_unknown_values);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(error_suite)
