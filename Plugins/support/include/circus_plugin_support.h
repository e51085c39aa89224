/*
 * circus_plugin_support.h: the small toolbox the shipped plugins share. It is compiled
 * into each plugin library (never exported: every function is hidden), so each plugin
 * still needs nothing but <circus/plugin.h> and the C library at run time (and the
 * client library it talks through: libcurl, hiredis).
 *
 * What it offers:
 *  - a reader for the JSON the host hands over (configs, event payloads, replies);
 *  - option parsing with the rules Circus applies to INI strings (int(), float(),
 *    to_bool()), refusing a bad value through the error sink, naming the key;
 *  - a growable string buffer, JSON string escaping, Python's float repr;
 *  - logging through the host with printf-style formatting;
 *  - splitting "watcher.<name>.<event>" topics, clocks, Circus's human2bytes;
 *  - running a daemon command as Circus's plugins cast it (cps_cast).
 *
 * cps_statsd.h (the statsd client), cps_worker.h (a thread of the plugin's own for
 * blocking I/O) and cps_observer.h (the observers' common frame) build on it.
 */
#ifndef CIRCUS_PLUGIN_SUPPORT_H
#define CIRCUS_PLUGIN_SUPPORT_H

#include <circus/plugin.h>

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#  define CPS_HIDDEN __attribute__((visibility("hidden")))
#  define CPS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define CPS_HIDDEN
#  define CPS_PRINTF(f, a)
#endif

/* ---- JSON reading ------------------------------------------------------------------
 * A value is a circus_str over its raw text ("\"abc\"", "12.5", "{...}"). The reader
 * trusts the host to hand over valid JSON, but never reads outside the given bytes.  */

#define CPS_JSON_NONE   0   /* empty or malformed                                       */
#define CPS_JSON_OBJECT 1
#define CPS_JSON_ARRAY  2
#define CPS_JSON_STRING 3
#define CPS_JSON_NUMBER 4
#define CPS_JSON_TRUE   5
#define CPS_JSON_FALSE  6
#define CPS_JSON_NULL   7

/* The kind of a raw value (leading whitespace allowed). */
CPS_HIDDEN int cps_json_kind(circus_str value);

/* Walks the members of an object or the elements of an array. */
typedef struct cps_json_iter {
    const char *at;
    const char *end;
    int object;          /* 1 for an object, 0 for an array                             */
    int failed;          /* set when the text turned out malformed                      */
} cps_json_iter;

/* Starts walking `container`; returns 0 if it is not of the expected kind. */
CPS_HIDDEN int cps_json_object_begin(circus_str container, cps_json_iter *it);
CPS_HIDDEN int cps_json_array_begin(circus_str container, cps_json_iter *it);
/* The next member: *key is the raw key string (quotes included), *value the raw value.
 * Returns 0 at the end (or on malformed text). */
CPS_HIDDEN int cps_json_object_next(cps_json_iter *it, circus_str *key, circus_str *value);
CPS_HIDDEN int cps_json_array_next(cps_json_iter *it, circus_str *value);

/* The raw value of member `key` (compared after unescaping) of object `obj`.
 * Returns 1 and fills *value if present, 0 if absent or obj is not an object. */
CPS_HIDDEN int cps_json_get(circus_str obj, const char *key, circus_str *value);

/* Decodes a raw JSON string into buf (UTF-8, NUL-terminated). Returns the length, or
 * -1 if value is not a string, is malformed, contains NUL, or does not fit in cap.   */
CPS_HIDDEN long cps_json_string(circus_str value, char *buf, size_t cap);
/* True when the raw string `value` decodes to exactly `text`. */
CPS_HIDDEN int cps_json_string_equals(circus_str value, const char *text);

/* Reads a raw JSON number. *is_float (may be NULL) says whether it was written with a
 * fraction or an exponent (Python would load it as a float, else as an int).
 * Returns 1 on success, 0 if value is not a number. */
CPS_HIDDEN int cps_json_number(circus_str value, double *out, int *is_float);
/* Reads a raw JSON integer (no fraction, no exponent) that fits in int64. */
CPS_HIDDEN int cps_json_int(circus_str value, int64_t *out);

/* ---- text buffers ------------------------------------------------------------------ */

typedef struct cps_buf {
    char *ptr;           /* NUL-terminated while ok                                     */
    size_t len;
    size_t cap;
    int failed;          /* an allocation failed: the content is incomplete             */
} cps_buf;

CPS_HIDDEN void cps_buf_init(cps_buf *b);
CPS_HIDDEN void cps_buf_free(cps_buf *b);
CPS_HIDDEN void cps_buf_reset(cps_buf *b);
CPS_HIDDEN void cps_buf_add(cps_buf *b, const char *ptr, size_t len);
CPS_HIDDEN void cps_buf_adds(cps_buf *b, const char *s);
CPS_HIDDEN void cps_buf_addf(cps_buf *b, const char *fmt, ...) CPS_PRINTF(2, 3);
/* Appends s as a JSON string literal, quotes included. */
CPS_HIDDEN void cps_buf_add_json_string(cps_buf *b, const char *s, size_t len);
/* The buffer as a circus_str (empty when it failed). */
CPS_HIDDEN circus_str cps_buf_str(const cps_buf *b);

/* Writes v as Python's repr(float) does ("0.0", "12.5", "1e-05", "1e+16"). */
CPS_HIDDEN void cps_format_py_float(double v, char *out, size_t cap);

/* ---- options: INI strings parsed as Circus parses them -----------------------------
 * Options arrive in the instance's config JSON, normally as strings (the INI values);
 * numbers and booleans are accepted too. An option given as JSON null counts as absent.
 * Each reader returns CIRCUS_OK (the default kept when absent) or CIRCUS_E_INVALID
 * after filling err with a message naming the key and the value.                    */

typedef struct cps_options {
    const circus_host_api *api;
    circus_error *err;
    circus_str config;   /* the section, a JSON object                                  */
} cps_options;

/* The option's text: 1 present (copied into buf), 0 absent, -1 not representable
 * (an object or array, or longer than cap; err filled).                              */
CPS_HIDDEN int cps_opt_text(const cps_options *o, const char *key, char *buf, size_t cap);
CPS_HIDDEN circus_status cps_opt_string(const cps_options *o, const char *key, char *out, size_t cap);
CPS_HIDDEN circus_status cps_opt_int(const cps_options *o, const char *key, int64_t min, int64_t max,
                                     int64_t *inout);
CPS_HIDDEN circus_status cps_opt_float(const cps_options *o, const char *key, double min, double max,
                                       double *inout);
CPS_HIDDEN circus_status cps_opt_bool(const cps_options *o, const char *key, int *inout);
/* Fills err: "option <key> = \"<value>\": <why>". */
CPS_HIDDEN circus_status cps_opt_refuse(const cps_options *o, const char *key, const char *value,
                                        const char *why);

/* The parsers behind the readers, for values found elsewhere (watcher options).
 * Python int(): optional blanks, sign, decimal digits. Python float(): a finite
 * decimal number. Circus to_bool(): yes/true/on/1, no/false/off/0, any case.
 * Each returns 1 on success, 0 on a bad value.                                        */
CPS_HIDDEN int cps_parse_int(const char *text, int64_t *out);
CPS_HIDDEN int cps_parse_float(const char *text, double *out);
CPS_HIDDEN int cps_parse_bool(const char *text, int *out);
/* A JSON value (string, number or boolean) as text for the parsers above: returns 1
 * and fills buf, or 0 for other kinds or when it does not fit.                        */
CPS_HIDDEN int cps_json_scalar_text(circus_str value, char *buf, size_t cap);

/* ---- host helpers ------------------------------------------------------------------ */

/* Logs a formatted line through the host (never stdout or stderr). */
CPS_HIDDEN void cps_log(const circus_host_api *api, circus_host *host, circus_log_level level,
                        const char *fmt, ...) CPS_PRINTF(4, 5);
/* Fills err with a formatted message. */
CPS_HIDDEN void cps_error(const circus_host_api *api, circus_error *err, circus_status code,
                          const char *fmt, ...) CPS_PRINTF(4, 5);

/* Splits "watcher.<name>.<event>" at its last dot (so watcher names may contain dots,
 * which Circus's own split breaks on). Returns 0 for other topics.                    */
CPS_HIDDEN int cps_watcher_topic(circus_str topic, circus_str *watcher, circus_str *event);

/* The "reason" of a command's error reply, as text in buf ("" when there is none). */
CPS_HIDDEN void cps_reply_reason(circus_str reply, char *buf, size_t cap);

/* Runs `command` with {"name": <watcher><more>} through the host (more: "" or further
 * members, ", \"signum\": 15"), as Circus's plugins cast it: the reply is not waited
 * for, and a failure is logged with the command and the watcher's name. */
CPS_HIDDEN void cps_cast(const circus_host_api *api, circus_host *host, const char *command, const char *watcher,
                         const char *more);

/* A malloc'd NUL-terminated copy of s (NULL when out of memory). */
CPS_HIDDEN char *cps_strndup(const char *s, size_t len);

/* Seconds on the monotonic clock (for intervals) and the wall clock. */
CPS_HIDDEN double cps_monotonic(void);
CPS_HIDDEN double cps_wall(void);

/* Milliseconds for a positive number of seconds, at least 1. */
CPS_HIDDEN uint64_t cps_ms(double seconds);

/* Circus's human2bytes: "8.55M" -> 8965324, int(number * 1024**k) for the units B K M G
 * T P E Z Y ("k" too), Bi Ki ... Yi, and byte kilo mega ... / kibi mebi .... Returns 0
 * for text Circus cannot read either (no number, no unit, an unknown unit). */
CPS_HIDDEN int cps_human2bytes(const char *text, double *out);

#endif /* CIRCUS_PLUGIN_SUPPORT_H */
