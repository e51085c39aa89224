/*
 * pyregex.h: the Python regular expressions of the watchdog's options, run with the
 * C library's POSIX regex.
 *
 * Circus's options are Python `re` patterns (msg_regex names its groups with
 * (?P<pid>...)). They are translated to POSIX extended syntax: named and non-capturing
 * groups become plain groups (their numbers are tracked), \d \w \s \D \W \S become
 * bracket expressions, escaped punctuation stays literal. What POSIX cannot express
 * (look-around, back-references, lazy quantifiers, \b, inline flags) is refused with
 * a message that says so. Matching is anchored at the start, like Python's re.match().
 */
#ifndef CIRCUS_WATCHDOG_PYREGEX_H
#define CIRCUS_WATCHDOG_PYREGEX_H

#include "circus_plugin_support.h"

#include <regex.h>
#include <stddef.h>

typedef struct pyregex {
    regex_t re;
    int compiled;
    size_t groups;        /* capturing groups after translation                          */
    int named_pid;        /* the group number of (?P<pid>...), 0 when there is none      */
} pyregex;

/* Compiles pattern; on failure returns 0 and writes the reason into why. */
CPS_HIDDEN int pyregex_compile(pyregex *rx, const char *pattern, char *why, size_t why_cap);
/* re.match(): 1 if text matches from its start. When group > 0 and it matched, copies
 * that group's text into out (NUL-terminated; empty if it did not take part). */
CPS_HIDDEN int pyregex_match(const pyregex *rx, const char *text, int group, char *out, size_t out_cap);
CPS_HIDDEN void pyregex_free(pyregex *rx);

#endif /* CIRCUS_WATCHDOG_PYREGEX_H */
