/*
 * pyregex.c: Python `re` patterns translated to POSIX extended regular expressions
 * (see pyregex.h).
 */
#define _GNU_SOURCE 1
#include "pyregex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(char *why, size_t cap, const char *fmt, const char *what) {
    snprintf(why, cap, fmt, what);
    return 0;
}

/* Characters that stay special in POSIX EREs when escaped with a backslash. */
static int ere_special(char c) {
    return c != '\0' && strchr(".[]()*+?{}|^$\\", c) != NULL;
}

/* Translates the inside of a Python bracket expression starting after '[' (and '^').
 * Returns the position after the closing ']', or NULL (why filled). */
static const char *translate_class(const char *p, int negated, cps_buf *out, char *why, size_t cap) {
    cps_buf body;
    int has_bracket = 0; /* a literal ']': must come first in POSIX */
    int has_dash = 0;    /* a literal '-': must come last in POSIX  */
    int first = 1;
    cps_buf_init(&body);
    for (;; first = 0) {
        char c = *p;
        if (c == '\0') {
            cps_buf_free(&body);
            refuse(why, cap, "%s", "a [ is never closed");
            return NULL;
        }
        if (c == ']' && !first) {
            p++;
            break;
        }
        if (c == '\\') {
            char e = p[1];
            p += 2;
            switch (e) {
            case 'd': cps_buf_adds(&body, "0-9"); break;
            case 'w': cps_buf_adds(&body, "[:alnum:]_"); break;
            case 's': cps_buf_adds(&body, "[:space:]"); break;
            case 'n': cps_buf_adds(&body, "\n"); break;
            case 't': cps_buf_adds(&body, "\t"); break;
            case 'r': cps_buf_adds(&body, "\r"); break;
            case ']': has_bracket = 1; break;
            case '-': has_dash = 1; break;
            case '\0':
                cps_buf_free(&body);
                refuse(why, cap, "%s", "the pattern ends with a lone backslash");
                return NULL;
            default:
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
                    char what[3] = {'\\', e, '\0'};
                    cps_buf_free(&body);
                    refuse(why, cap, "%s inside [...] is not supported", what);
                    return NULL;
                }
                cps_buf_add(&body, &e, 1); /* escaped punctuation: itself */
                break;
            }
            continue;
        }
        if (c == ']' && first) {
            has_bracket = 1;
            p++;
            continue;
        }
        cps_buf_add(&body, p, 1);
        p++;
    }
    cps_buf_adds(out, negated ? "[^" : "[");
    if (has_bracket) {
        cps_buf_adds(out, "]");
    }
    cps_buf_add(out, body.ptr != NULL ? body.ptr : "", body.len);
    if (has_dash) {
        cps_buf_adds(out, "-");
    }
    cps_buf_adds(out, "]");
    cps_buf_free(&body);
    return p;
}

/* The translation; 1 on success. */
static int translate(const char *p, cps_buf *out, size_t *groups, int *named_pid, char *why, size_t cap) {
    *groups = 0;
    *named_pid = 0;
    while (*p != '\0') {
        char c = *p;
        if (c == '\\') {
            char e = p[1];
            p += 2;
            switch (e) {
            case 'd': cps_buf_adds(out, "[0-9]"); break;
            case 'D': cps_buf_adds(out, "[^0-9]"); break;
            case 'w': cps_buf_adds(out, "[[:alnum:]_]"); break;
            case 'W': cps_buf_adds(out, "[^[:alnum:]_]"); break;
            case 's': cps_buf_adds(out, "[[:space:]]"); break;
            case 'S': cps_buf_adds(out, "[^[:space:]]"); break;
            case 'n': cps_buf_adds(out, "\n"); break;
            case 't': cps_buf_adds(out, "\t"); break;
            case 'r': cps_buf_adds(out, "\r"); break;
            case '\0': return refuse(why, cap, "%s", "the pattern ends with a lone backslash");
            default:
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
                    char what[3] = {'\\', e, '\0'};
                    return refuse(why, cap, "%s is not supported (only \\d \\w \\s \\D \\W \\S \\n \\t \\r)", what);
                }
                if (ere_special(e)) {
                    char esc[2] = {'\\', e};
                    cps_buf_add(out, esc, 2);
                } else {
                    cps_buf_add(out, &e, 1); /* "\-", "\/", "\;": the character itself */
                }
                break;
            }
            continue;
        }
        if (c == '[') {
            int negated = p[1] == '^';
            p = translate_class(p + 1 + negated, negated, out, why, cap);
            if (p == NULL) {
                return 0;
            }
            continue;
        }
        if (c == '(') {
            (*groups)++;
            if (p[1] == '?') {
                if (p[2] == ':') {
                    p += 3;
                } else if (p[2] == 'P' && p[3] == '<') {
                    const char *name = p + 4;
                    const char *end = strchr(name, '>');
                    if (end == NULL) {
                        return refuse(why, cap, "%s", "a (?P<name> is not closed by >");
                    }
                    if (end - name == 3 && strncmp(name, "pid", 3) == 0) {
                        *named_pid = (int)*groups;
                    }
                    p = end + 1;
                } else {
                    char what[5] = {'(', '?', p[2], '\0', '\0'};
                    return refuse(why, cap,
                                  "%s...) is not supported (only (?P<name>...) and (?:...) groups)", what);
                }
            } else {
                p++;
            }
            cps_buf_adds(out, "(");
            continue;
        }
        if ((c == '*' || c == '+' || c == '?' || c == '}') && p[1] == '?') {
            char what[3] = {c, '?', '\0'};
            return refuse(why, cap, "the lazy quantifier %s is not supported", what);
        }
        cps_buf_add(out, p, 1);
        p++;
    }
    return 1;
}

int pyregex_compile(pyregex *rx, const char *pattern, char *why, size_t why_cap) {
    cps_buf ere;
    int rc;
    memset(rx, 0, sizeof *rx);
    cps_buf_init(&ere);
    cps_buf_adds(&ere, "");
    if (!translate(pattern, &ere, &rx->groups, &rx->named_pid, why, why_cap)) {
        cps_buf_free(&ere);
        return 0;
    }
    if (ere.failed) {
        cps_buf_free(&ere);
        snprintf(why, why_cap, "out of memory");
        return 0;
    }
    rc = regcomp(&rx->re, ere.ptr, REG_EXTENDED);
    cps_buf_free(&ere);
    if (rc != 0) {
        char text[200];
        regerror(rc, &rx->re, text, sizeof text);
        snprintf(why, why_cap, "%s", text);
        return 0;
    }
    rx->compiled = 1;
    return 1;
}

int pyregex_match(const pyregex *rx, const char *text, int group, char *out, size_t out_cap) {
    regmatch_t small[16];
    regmatch_t *m = small;
    size_t n = rx->groups + 1;
    int matched;
    if (!rx->compiled) {
        return 0;
    }
    if (n > sizeof small / sizeof *small) {
        m = (regmatch_t *)malloc(n * sizeof *m);
        if (m == NULL) {
            return 0;
        }
    }
    matched = regexec(&rx->re, text, n, m, 0) == 0 && m[0].rm_so == 0;
    if (matched && group > 0 && (size_t)group < n && out_cap > 0) {
        out[0] = '\0';
        if (m[group].rm_so >= 0) {
            size_t len = (size_t)(m[group].rm_eo - m[group].rm_so);
            if (len >= out_cap) {
                len = out_cap - 1;
            }
            memcpy(out, text + m[group].rm_so, len);
            out[len] = '\0';
        }
    }
    if (m != small) {
        free(m);
    }
    return matched;
}

void pyregex_free(pyregex *rx) {
    if (rx->compiled) {
        regfree(&rx->re);
        rx->compiled = 0;
    }
}
