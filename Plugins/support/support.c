/*
 * support.c: the shared toolbox of the shipped plugins (see circus_plugin_support.h).
 */
#define _GNU_SOURCE 1
#include "circus_plugin_support.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- JSON reading ------------------------------------------------------------------ */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* Returns the end of the string starting at p (on its opening quote), or NULL. */
static const char *skip_string(const char *p, const char *end) {
    p++;
    while (p < end) {
        if (*p == '\\') {
            p += 2;
        } else if (*p == '"') {
            return p + 1;
        } else {
            p++;
        }
    }
    return NULL;
}

/* Returns the end of the value starting at p (no leading whitespace), or NULL. */
static const char *skip_value(const char *p, const char *end) {
    int depth = 0;
    if (p >= end) {
        return NULL;
    }
    do {
        if (p >= end) {
            return NULL;
        }
        switch (*p) {
        case '"':
            p = skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            break;
        case '{':
        case '[':
            depth++;
            p++;
            break;
        case '}':
        case ']':
            if (depth == 0) {
                return NULL;
            }
            depth--;
            p++;
            break;
        default:
            if (depth == 0) {
                /* A scalar: runs until a delimiter. */
                const char *start = p;
                while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
                       *p != '\n' && *p != '\r' && *p != ':') {
                    p++;
                }
                return p > start ? p : NULL;
            }
            p++;
            break;
        }
    } while (depth > 0);
    return p;
}

int cps_json_kind(circus_str value) {
    const char *end = value.ptr + value.len;
    const char *p;
    if (value.ptr == NULL) {
        return CPS_JSON_NONE;
    }
    p = skip_ws(value.ptr, end);
    if (p >= end) {
        return CPS_JSON_NONE;
    }
    switch (*p) {
    case '{': return CPS_JSON_OBJECT;
    case '[': return CPS_JSON_ARRAY;
    case '"': return CPS_JSON_STRING;
    case 't': return CPS_JSON_TRUE;
    case 'f': return CPS_JSON_FALSE;
    case 'n': return CPS_JSON_NULL;
    default:
        return (*p == '-' || (*p >= '0' && *p <= '9')) ? CPS_JSON_NUMBER : CPS_JSON_NONE;
    }
}

static int container_begin(circus_str c, cps_json_iter *it, char open) {
    const char *end = c.ptr + c.len;
    const char *p;
    it->at = NULL;
    it->end = end;
    it->object = open == '{';
    it->failed = 0;
    if (c.ptr == NULL) {
        return 0;
    }
    p = skip_ws(c.ptr, end);
    if (p >= end || *p != open) {
        return 0;
    }
    it->at = p + 1;
    return 1;
}

int cps_json_object_begin(circus_str container, cps_json_iter *it) {
    return container_begin(container, it, '{');
}

int cps_json_array_begin(circus_str container, cps_json_iter *it) {
    return container_begin(container, it, '[');
}

/* Moves past a separating comma, or detects the closing bracket. 1: an item follows. */
static int iter_advance(cps_json_iter *it) {
    const char *p;
    if (it->at == NULL || it->failed) {
        return 0;
    }
    p = skip_ws(it->at, it->end);
    if (p < it->end && *p == ',') {
        p = skip_ws(p + 1, it->end);
    }
    if (p >= it->end) {
        it->failed = 1;
        return 0;
    }
    if (*p == (it->object ? '}' : ']')) {
        it->at = NULL;
        return 0;
    }
    it->at = p;
    return 1;
}

int cps_json_object_next(cps_json_iter *it, circus_str *key, circus_str *value) {
    const char *p;
    const char *k_end;
    const char *v_end;
    if (!it->object || !iter_advance(it)) {
        return 0;
    }
    p = it->at;
    if (*p != '"' || (k_end = skip_string(p, it->end)) == NULL) {
        it->failed = 1;
        return 0;
    }
    *key = circus_str_make(p, (size_t)(k_end - p));
    p = skip_ws(k_end, it->end);
    if (p >= it->end || *p != ':') {
        it->failed = 1;
        return 0;
    }
    p = skip_ws(p + 1, it->end);
    v_end = skip_value(p, it->end);
    if (v_end == NULL) {
        it->failed = 1;
        return 0;
    }
    *value = circus_str_make(p, (size_t)(v_end - p));
    it->at = v_end;
    return 1;
}

int cps_json_array_next(cps_json_iter *it, circus_str *value) {
    const char *v_end;
    if (it->object || !iter_advance(it)) {
        return 0;
    }
    v_end = skip_value(it->at, it->end);
    if (v_end == NULL) {
        it->failed = 1;
        return 0;
    }
    *value = circus_str_make(it->at, (size_t)(v_end - it->at));
    it->at = v_end;
    return 1;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    unsigned v = 0;
    int i;
    if (end - p < 4) {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

long cps_json_string(circus_str value, char *buf, size_t cap) {
    const char *end = value.ptr + value.len;
    const char *p;
    size_t n = 0;
    if (cap == 0 || cps_json_kind(value) != CPS_JSON_STRING) {
        return -1;
    }
    p = skip_ws(value.ptr, end) + 1;
    while (p < end && *p != '"') {
        unsigned cp;
        char tmp[4];
        size_t len = 0;
        if (*p != '\\') {
            if (n + 1 >= cap) {
                return -1;
            }
            buf[n++] = *p++;
            continue;
        }
        p++;
        if (p >= end) {
            return -1;
        }
        switch (*p) {
        case '"': tmp[0] = '"'; len = 1; break;
        case '\\': tmp[0] = '\\'; len = 1; break;
        case '/': tmp[0] = '/'; len = 1; break;
        case 'b': tmp[0] = '\b'; len = 1; break;
        case 'f': tmp[0] = '\f'; len = 1; break;
        case 'n': tmp[0] = '\n'; len = 1; break;
        case 'r': tmp[0] = '\r'; len = 1; break;
        case 't': tmp[0] = '\t'; len = 1; break;
        case 'u':
            if (!hex4(p + 1, end, &cp)) {
                return -1;
            }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, end, &low) ||
                    low < 0xDC00 || low > 0xDFFF) {
                    return -1;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (cp == 0) {
                return -1;
            } else if (cp < 0x80) {
                tmp[0] = (char)cp;
                len = 1;
            } else if (cp < 0x800) {
                tmp[0] = (char)(0xC0 | (cp >> 6));
                tmp[1] = (char)(0x80 | (cp & 0x3F));
                len = 2;
            } else if (cp < 0x10000) {
                tmp[0] = (char)(0xE0 | (cp >> 12));
                tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tmp[2] = (char)(0x80 | (cp & 0x3F));
                len = 3;
            } else {
                tmp[0] = (char)(0xF0 | (cp >> 18));
                tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tmp[3] = (char)(0x80 | (cp & 0x3F));
                len = 4;
            }
            break;
        default:
            return -1;
        }
        p++;
        if (n + len >= cap) {
            return -1;
        }
        memcpy(buf + n, tmp, len);
        n += len;
    }
    if (p >= end) {
        return -1;
    }
    buf[n] = '\0';
    return (long)n;
}

int cps_json_string_equals(circus_str value, const char *text) {
    char small[256];
    size_t want = strlen(text);
    long n;
    if (want >= sizeof small) {
        char *big = (char *)malloc(want + 2);
        int same;
        if (big == NULL) {
            return 0;
        }
        n = cps_json_string(value, big, want + 2);
        same = n == (long)want && memcmp(big, text, want) == 0;
        free(big);
        return same;
    }
    n = cps_json_string(value, small, sizeof small);
    return n == (long)want && memcmp(small, text, want) == 0;
}

int cps_json_get(circus_str obj, const char *key, circus_str *value) {
    cps_json_iter it;
    circus_str k;
    circus_str v;
    if (!cps_json_object_begin(obj, &it)) {
        return 0;
    }
    while (cps_json_object_next(&it, &k, &v)) {
        if (cps_json_string_equals(k, key)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

int cps_json_number(circus_str value, double *out, int *is_float) {
    char text[64];
    const char *end = value.ptr + value.len;
    const char *p;
    size_t n;
    char *stop;
    if (cps_json_kind(value) != CPS_JSON_NUMBER) {
        return 0;
    }
    p = skip_ws(value.ptr, end);
    n = (size_t)(end - p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r')) {
        n--;
    }
    if (n == 0 || n >= sizeof text) {
        return 0;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    errno = 0;
    *out = strtod(text, &stop);
    if (*stop != '\0') {
        return 0;
    }
    if (is_float != NULL) {
        *is_float = strpbrk(text, ".eE") != NULL;
    }
    return 1;
}

int cps_json_int(circus_str value, int64_t *out) {
    char text[32];
    const char *end = value.ptr + value.len;
    const char *p;
    size_t n;
    char *stop;
    long long v;
    if (cps_json_kind(value) != CPS_JSON_NUMBER) {
        return 0;
    }
    p = skip_ws(value.ptr, end);
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof text) {
        return 0;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    if (strpbrk(text, ".eE") != NULL) {
        return 0;
    }
    errno = 0;
    v = strtoll(text, &stop, 10);
    if (*stop != '\0' || errno != 0) {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

/* ---- text buffers ------------------------------------------------------------------ */

void cps_buf_init(cps_buf *b) {
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void cps_buf_free(cps_buf *b) {
    free(b->ptr);
    cps_buf_init(b);
}

void cps_buf_reset(cps_buf *b) {
    b->len = 0;
    b->failed = 0;
    if (b->ptr != NULL) {
        b->ptr[0] = '\0';
    }
}

static int buf_reserve(cps_buf *b, size_t extra) {
    size_t need;
    if (b->failed) {
        return 0;
    }
    need = b->len + extra + 1;
    if (need > b->cap) {
        size_t cap = b->cap < 64 ? 64 : b->cap;
        char *p;
        while (cap < need) {
            cap *= 2;
        }
        p = (char *)realloc(b->ptr, cap);
        if (p == NULL) {
            b->failed = 1;
            return 0;
        }
        b->ptr = p;
        b->cap = cap;
    }
    return 1;
}

void cps_buf_add(cps_buf *b, const char *ptr, size_t len) {
    if (!buf_reserve(b, len)) {
        return;
    }
    if (len > 0) {
        memcpy(b->ptr + b->len, ptr, len);
    }
    b->len += len;
    b->ptr[b->len] = '\0';
}

void cps_buf_adds(cps_buf *b, const char *s) {
    cps_buf_add(b, s, strlen(s));
}

void cps_buf_addf(cps_buf *b, const char *fmt, ...) {
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        cps_buf_add(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cps_buf_add_json_string(cps_buf *b, const char *s, size_t len) {
    size_t i;
    cps_buf_add(b, "\"", 1);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2];
            esc[0] = '\\';
            esc[1] = (char)c;
            cps_buf_add(b, esc, 2);
        } else if (c < 0x20) {
            cps_buf_addf(b, "\\u%04x", c);
        } else {
            cps_buf_add(b, (const char *)&s[i], 1);
        }
    }
    cps_buf_add(b, "\"", 1);
}

circus_str cps_buf_str(const cps_buf *b) {
    if (b->failed || b->ptr == NULL) {
        return circus_str_make("", 0);
    }
    return circus_str_make(b->ptr, b->len);
}

void cps_format_py_float(double v, char *out, size_t cap) {
    char digits[40];
    int precision;
    int exponent;
    if (cap == 0) {
        return;
    }
    if (isnan(v)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v < 0 ? "-inf" : "inf");
        return;
    }
    if (v == 0) {
        snprintf(out, cap, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    /* The fewest significant digits that read back as v: what repr() prints. */
    for (precision = 1; precision <= 17; precision++) {
        snprintf(digits, sizeof digits, "%.*e", precision - 1, v);
        if (strtod(digits, NULL) == v) {
            break;
        }
    }
    if (precision > 17) {
        precision = 17;
    }
    exponent = atoi(strchr(digits, 'e') + 1);
    if (exponent >= -4 && exponent < 16) {
        /* Fixed notation, with at least one decimal, as repr(1.0) == "1.0". */
        int decimals = precision - 1 - exponent;
        if (decimals < 1) {
            decimals = 1;
        }
        snprintf(out, cap, "%.*f", decimals, v);
    } else {
        /* "1e-05", "1.5e+16": the mantissa without trailing zeros, two exponent digits. */
        snprintf(out, cap, "%.*e", precision - 1, v);
    }
}

/* ---- options ----------------------------------------------------------------------- */

int cps_json_scalar_text(circus_str value, char *buf, size_t cap) {
    const char *end = value.ptr + value.len;
    const char *p;
    size_t n;
    switch (cps_json_kind(value)) {
    case CPS_JSON_STRING:
        return cps_json_string(value, buf, cap) >= 0;
    case CPS_JSON_TRUE:
        return snprintf(buf, cap, "true") < (int)cap;
    case CPS_JSON_FALSE:
        return snprintf(buf, cap, "false") < (int)cap;
    case CPS_JSON_NUMBER:
        p = skip_ws(value.ptr, end);
        n = (size_t)(end - p);
        if (n >= cap) {
            return 0;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        return 1;
    default:
        return 0;
    }
}

circus_status cps_opt_refuse(const cps_options *o, const char *key, const char *value, const char *why) {
    cps_error(o->api, o->err, CIRCUS_E_INVALID, "option %s = \"%s\": %s", key, value, why);
    return CIRCUS_E_INVALID;
}

int cps_opt_text(const cps_options *o, const char *key, char *buf, size_t cap) {
    circus_str v;
    int kind;
    if (!cps_json_get(o->config, key, &v)) {
        return 0;
    }
    kind = cps_json_kind(v);
    if (kind == CPS_JSON_NULL) {
        return 0;
    }
    if (!cps_json_scalar_text(v, buf, cap)) {
        if (kind == CPS_JSON_OBJECT || kind == CPS_JSON_ARRAY) {
            cps_error(o->api, o->err, CIRCUS_E_INVALID, "option %s: expected a single value, not a list or a table", key);
        } else {
            cps_error(o->api, o->err, CIRCUS_E_INVALID, "option %s: the value is too long (at most %zu bytes)", key,
                      cap - 1);
        }
        return -1;
    }
    return 1;
}

circus_status cps_opt_string(const cps_options *o, const char *key, char *out, size_t cap) {
    char *text = (char *)malloc(cap);
    int found;
    if (text == NULL) {
        cps_error(o->api, o->err, CIRCUS_E_INTERNAL, "out of memory reading option %s", key);
        return CIRCUS_E_INTERNAL;
    }
    found = cps_opt_text(o, key, text, cap);
    if (found > 0) {
        memcpy(out, text, strlen(text) + 1);
    }
    free(text);
    return found < 0 ? CIRCUS_E_INVALID : CIRCUS_OK;
}

circus_status cps_opt_int(const cps_options *o, const char *key, int64_t min, int64_t max, int64_t *inout) {
    char text[128];
    char why[128];
    int64_t v;
    int found = cps_opt_text(o, key, text, sizeof text);
    if (found <= 0) {
        return found < 0 ? CIRCUS_E_INVALID : CIRCUS_OK;
    }
    if (!cps_parse_int(text, &v)) {
        return cps_opt_refuse(o, key, text, "not an integer");
    }
    if (v < min || v > max) {
        snprintf(why, sizeof why, "out of range (%lld to %lld)", (long long)min, (long long)max);
        return cps_opt_refuse(o, key, text, why);
    }
    *inout = v;
    return CIRCUS_OK;
}

circus_status cps_opt_float(const cps_options *o, const char *key, double min, double max, double *inout) {
    char text[128];
    char why[128];
    char shown[48];
    double v;
    int found = cps_opt_text(o, key, text, sizeof text);
    if (found <= 0) {
        return found < 0 ? CIRCUS_E_INVALID : CIRCUS_OK;
    }
    if (!cps_parse_float(text, &v)) {
        return cps_opt_refuse(o, key, text, "not a number");
    }
    if (v < min) {
        cps_format_py_float(min, shown, sizeof shown);
        snprintf(why, sizeof why, "must be at least %s", shown);
        return cps_opt_refuse(o, key, text, why);
    }
    if (v > max) {
        cps_format_py_float(max, shown, sizeof shown);
        snprintf(why, sizeof why, "must be at most %s", shown);
        return cps_opt_refuse(o, key, text, why);
    }
    *inout = v;
    return CIRCUS_OK;
}

circus_status cps_opt_bool(const cps_options *o, const char *key, int *inout) {
    char text[128];
    int v;
    int found = cps_opt_text(o, key, text, sizeof text);
    if (found <= 0) {
        return found < 0 ? CIRCUS_E_INVALID : CIRCUS_OK;
    }
    if (!cps_parse_bool(text, &v)) {
        return cps_opt_refuse(o, key, text, "not a boolean (use true/false, yes/no, on/off or 1/0)");
    }
    *inout = v;
    return CIRCUS_OK;
}

/* Copies text without surrounding blanks (as Python's int() and float() ignore them). */
static int stripped(const char *text, char *out, size_t cap) {
    size_t n;
    while (*text != '\0' && isspace((unsigned char)*text)) {
        text++;
    }
    n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1])) {
        n--;
    }
    if (n == 0 || n >= cap) {
        return 0;
    }
    memcpy(out, text, n);
    out[n] = '\0';
    return 1;
}

int cps_parse_int(const char *text, int64_t *out) {
    char s[64];
    const char *p;
    char *stop;
    long long v;
    if (!stripped(text, s, sizeof s)) {
        return 0;
    }
    p = s;
    if (*p == '+' || *p == '-') {
        p++;
    }
    if (*p == '\0') {
        return 0;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }
    errno = 0;
    v = strtoll(s, &stop, 10);
    if (errno != 0 || *stop != '\0') {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

int cps_parse_float(const char *text, double *out) {
    char s[64];
    const char *p;
    char *stop;
    double v;
    if (!stripped(text, s, sizeof s)) {
        return 0;
    }
    /* Decimal only: strtod would also take hexadecimal, "inf" and "nan". */
    for (p = s; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')) {
            return 0;
        }
    }
    errno = 0;
    v = strtod(s, &stop);
    if (*stop != '\0' || stop == s || !isfinite(v)) {
        return 0;
    }
    *out = v;
    return 1;
}

int cps_parse_bool(const char *text, int *out) {
    static const char *const truthy[] = {"yes", "true", "on", "1"};
    static const char *const falsy[] = {"no", "false", "off", "0"};
    char s[16];
    size_t i;
    if (!stripped(text, s, sizeof s)) {
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        s[i] = (char)tolower((unsigned char)s[i]);
    }
    for (i = 0; i < 4; i++) {
        if (strcmp(s, truthy[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcmp(s, falsy[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* ---- host helpers ------------------------------------------------------------------ */

void cps_log(const circus_host_api *api, circus_host *host, circus_log_level level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    api->log(host, level, circus_cstr(line));
}

void cps_error(const circus_host_api *api, circus_error *err, circus_status code, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        line[0] = '\0';
    }
    api->set_error(err, code, circus_cstr(line));
}

int cps_watcher_topic(circus_str topic, circus_str *watcher, circus_str *event) {
    static const char prefix[] = "watcher.";
    const size_t plen = sizeof prefix - 1;
    size_t dot;
    if (topic.len <= plen || memcmp(topic.ptr, prefix, plen) != 0) {
        return 0;
    }
    for (dot = topic.len - 1; dot > plen; dot--) {
        if (topic.ptr[dot] == '.') {
            break;
        }
    }
    if (dot <= plen || dot == topic.len - 1) {
        return 0;
    }
    *watcher = circus_str_make(topic.ptr + plen, dot - plen);
    *event = circus_str_make(topic.ptr + dot + 1, topic.len - dot - 1);
    return 1;
}

void cps_reply_reason(circus_str reply, char *buf, size_t cap) {
    circus_str reason;
    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    if (cps_json_get(reply, "reason", &reason) && !cps_json_scalar_text(reason, buf, cap)) {
        buf[0] = '\0';
    }
}

/* A cast under way: what the failure message needs. */
typedef struct cast {
    const circus_host_api *api;
    circus_host *host;
    char what[1];                     /* "<command> <watcher>", allocated to fit           */
} cast;

static void cast_done(void *ud, circus_status st, circus_str json) {
    cast *c = (cast *)ud;
    char reason[256];
    if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
        cps_reply_reason(json, reason, sizeof reason);
        cps_log(c->api, c->host, CIRCUS_LOG_WARNING, "%s failed: %s", c->what, reason);
    }
    free(c);
}

void cps_cast(const circus_host_api *api, circus_host *host, const char *command, const char *watcher,
              const char *more) {
    size_t n = strlen(command) + 1 + strlen(watcher);
    cast *c = (cast *)malloc(sizeof *c + n);
    cps_buf args;
    circus_status st;
    if (c == NULL) {
        cps_log(api, host, CIRCUS_LOG_ERROR, "out of memory: cannot run %s %s", command, watcher);
        return;
    }
    c->api = api;
    c->host = host;
    snprintf(c->what, n + 1, "%s %s", command, watcher);
    cps_buf_init(&args);
    cps_buf_adds(&args, "{\"name\": ");
    cps_buf_add_json_string(&args, watcher, strlen(watcher));
    cps_buf_adds(&args, more);
    cps_buf_adds(&args, "}");
    st = api->call(host, circus_cstr(command), cps_buf_str(&args), cast_done, c);
    cps_buf_free(&args);
    if (st != CIRCUS_OK) {
        cps_log(api, host, CIRCUS_LOG_WARNING, "cannot run %s (status %d)", c->what, (int)st);
        free(c);
    }
}

char *cps_strndup(const char *s, size_t len) {
    char *copy = (char *)malloc(len + 1);
    if (copy != NULL) {
        if (len > 0) {
            memcpy(copy, s, len);
        }
        copy[len] = '\0';
    }
    return copy;
}

double cps_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double cps_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t cps_ms(double seconds) {
    double ms = seconds * 1000.0;
    if (!(ms >= 1.0)) {
        return 1;
    }
    if (ms > 1e15) {
        return (uint64_t)1e15;
    }
    return (uint64_t)(ms + 0.5);
}

int cps_human2bytes(const char *text, double *out) {
    static const char *const units[4][9] = {
        {"B", "K", "M", "G", "T", "P", "E", "Z", "Y"},
        {"byte", "kilo", "mega", "giga", "tera", "peta", "exa", "zetta", "iotta"},
        {"Bi", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"},
        {"byte", "kibi", "mebi", "gibi", "tebi", "pebi", "exbi", "zebi", "yobi"},
    };
    char num[64];
    char unit[32];
    const char *s = text;
    size_t n = 0;
    double value;
    int set;
    int i;
    while ((*s >= '0' && *s <= '9') || *s == '.') {
        if (n + 1 >= sizeof num) {
            return 0;
        }
        num[n++] = *s++;
    }
    num[n] = '\0';
    if (n == 0 || !cps_parse_float(num, &value) || !stripped(s, unit, sizeof unit)) {
        return 0;
    }
    if (strcmp(unit, "k") == 0) {
        strcpy(unit, "K");
    }
    for (set = 0; set < 4; set++) {
        double factor = 1;
        for (i = 0; i < 9; i++) {
            if (strcmp(unit, units[set][i]) == 0) {
                /* int(num * 1024**i): Python truncates toward zero. */
                double bytes = value * factor;
                *out = (double)(long long)bytes;
                return 1;
            }
            factor *= 1024;
        }
    }
    return 0;
}
