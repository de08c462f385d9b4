/* SPDX-License-Identifier: MIT */
/* The Check subset of check.h: registration, an in-process runner, failure reporting. */
#include "check.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct ck_shim_test {
    ck_shim_fn fn;
    const char *name;
    int start, end;
};

struct TCase {
    const char *name;
    struct ck_shim_test *tests;
    int n;
    SFun setup[4], teardown[4];
    int nfix;
    TCase *next;
};

struct Suite {
    const char *name;
    TCase *first, *last;
};

struct SRunner {
    Suite *s;
    int run, failed;
};

static jmp_buf ck_shim_jmp;
static char ck_shim_msg[1024];

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fputs("check shim: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

Suite *suite_create(const char *name)
{
    Suite *s = xcalloc(1, sizeof(*s));
    s->name = name;
    return s;
}

TCase *tcase_create(const char *name)
{
    TCase *tc = xcalloc(1, sizeof(*tc));
    tc->name = name;
    return tc;
}

void suite_add_tcase(Suite *s, TCase *tc)
{
    if (s->last)
        s->last->next = tc;
    else
        s->first = tc;
    s->last = tc;
}

void ck_shim_add(TCase *tc, ck_shim_fn fn, const char *name, int start, int end)
{
    struct ck_shim_test *t = realloc(tc->tests, sizeof(*t) * (size_t)(tc->n + 1));
    if (t == NULL) {
        fputs("check shim: out of memory\n", stderr);
        exit(2);
    }
    tc->tests = t;
    tc->tests[tc->n++] = (struct ck_shim_test){fn, name, start, end};
}

void tcase_add_checked_fixture(TCase *tc, SFun setup, SFun teardown)
{
    if (tc->nfix == 4) {
        fputs("check shim: too many fixtures\n", stderr);
        exit(2);
    }
    tc->setup[tc->nfix] = setup;
    tc->teardown[tc->nfix] = teardown;
    tc->nfix++;
}

void tcase_add_unchecked_fixture(TCase *tc, SFun setup, SFun teardown)
{
    tcase_add_checked_fixture(tc, setup, teardown); /* no fork: the same thing */
}

void tcase_set_timeout(TCase *tc, double seconds)
{
    (void)tc, (void)seconds; /* CTest's TIMEOUT applies */
}

SRunner *srunner_create(Suite *s)
{
    SRunner *sr = xcalloc(1, sizeof(*sr));
    sr->s = s;
    return sr;
}

void ck_shim_fail(const char *file, int line, const char *fmt, ...)
{
    int n = snprintf(ck_shim_msg, sizeof(ck_shim_msg), "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(ck_shim_msg))
        vsnprintf(ck_shim_msg + n, sizeof(ck_shim_msg) - (size_t)n, fmt, ap);
    va_end(ap);
    longjmp(ck_shim_jmp, 1);
}

void srunner_run_all(SRunner *sr, enum print_output mode)
{
    (void)mode;
    printf("Running suite(s): %s (in-tree Check shim, no fork)\n", sr->s->name);
    fflush(stdout);
    for (TCase *tc = sr->s->first; tc; tc = tc->next)
        for (int k = 0; k < tc->n; k++) {
            const struct ck_shim_test *t = &tc->tests[k];
            for (int i = t->start; i < t->end; i++) {
                sr->run++;
                if (setjmp(ck_shim_jmp) == 0) {
                    for (int f = 0; f < tc->nfix; f++)
                        if (tc->setup[f])
                            tc->setup[f]();
                    t->fn(i);
                    for (int f = tc->nfix; f-- > 0;)
                        if (tc->teardown[f])
                            tc->teardown[f]();
                } else {
                    sr->failed++;
                    printf("%s:F:%s:%s:%d\n", ck_shim_msg, tc->name, t->name, i);
                    fflush(stdout);
                }
            }
        }
    printf("%d%%: Checks: %d, Failures: %d, Errors: 0\n",
           sr->run ? 100 * (sr->run - sr->failed) / sr->run : 0, sr->run, sr->failed);
}

int srunner_ntests_failed(SRunner *sr)
{
    return sr->failed;
}

void srunner_free(SRunner *sr)
{
    for (TCase *tc = sr->s->first, *next; tc; tc = next) {
        next = tc->next;
        free(tc->tests);
        free(tc);
    }
    free(sr->s);
    free(sr);
}
