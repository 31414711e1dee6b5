/* check: the one assertion macro of the table-driven unit tests. A failed CHECK prints where and
 * why and counts; the test's main returns check_result(). */
#ifndef SAVEFS_CHECK_H
#define SAVEFS_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

/* 0 if every CHECK held, else 1 after saying how many failed. */
static inline int check_result(const char *test)
{
    if (check_failures)
        fprintf(stderr, "%s: %d failures\n", test, check_failures);
    return check_failures ? 1 : 0;
}

#endif
