/* SPDX-License-Identifier: MIT */
/* Shared glue for the Check suites: one suite per unit, one executable per suite. */
#ifndef APF_TESTS_CHECK_H
#define APF_TESTS_CHECK_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* CTest treats this exit code as "skipped" (SKIP_RETURN_CODE), never as a pass. */
#define APF_TEST_SKIP 77

/* Runs the suite and maps the result to an exit code. CK_FORK / CK_VERBOSITY from the
 * environment still apply (the sanitizer builds run without fork). */
static inline int apf_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#define APF_CHECK_MAIN(suite_fn)                                                               \
    int main(void)                                                                             \
    {                                                                                          \
        return apf_check_run(suite_fn());                                                      \
    }

#endif
