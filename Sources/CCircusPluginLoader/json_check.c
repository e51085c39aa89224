// Checking that a plugin's string is one JSON object, where the ABI asks the host to
// refuse anything else at once (publish, reply, register_command, call): a syntax check
// only, since the text is passed on as it is. Nesting deeper than JSON_DEPTH is refused
// rather than recursed into.

#include "circus_plugin_loader.h"

#include <string.h>

#define JSON_DEPTH 256

typedef struct cursor {
    const unsigned char *at;
    const unsigned char *end;
} cursor;

static void blanks(cursor *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) c->at++;
}

static int literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->at) < n || memcmp(c->at, word, n) != 0) return 0;
    c->at += n;
    return 1;
}

static int hex(unsigned char b) { return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

// A string, at its opening quote. Control characters must be escaped; UTF-8 is passed on.
static int string(cursor *c) {
    c->at++;
    while (c->at < c->end) {
        unsigned char b = *c->at++;
        if (b == '"') return 1;
        if (b < 0x20) return 0;
        if (b != '\\') continue;
        if (c->at >= c->end) return 0;
        b = *c->at++;
        if (b == 'u') {
            if (c->end - c->at < 4) return 0;
            for (int i = 0; i < 4; i++) {
                if (!hex(c->at[i])) return 0;
            }
            c->at += 4;
        } else if (!strchr("\"\\/bfnrt", b) || b == 0) {
            return 0;
        }
    }
    return 0;
}

static int digits(cursor *c) {
    const unsigned char *start = c->at;
    while (c->at < c->end && *c->at >= '0' && *c->at <= '9') c->at++;
    return c->at > start;
}

static int number(cursor *c) {
    if (c->at < c->end && *c->at == '-') c->at++;
    if (c->at < c->end && *c->at == '0') {
        c->at++;
    } else if (!digits(c)) {
        return 0;
    }
    if (c->at < c->end && *c->at == '.') {
        c->at++;
        if (!digits(c)) return 0;
    }
    if (c->at < c->end && (*c->at == 'e' || *c->at == 'E')) {
        c->at++;
        if (c->at < c->end && (*c->at == '+' || *c->at == '-')) c->at++;
        if (!digits(c)) return 0;
    }
    return 1;
}

static int value(cursor *c, int depth);

// An object or an array, at its opening bracket.
static int container(cursor *c, int depth, int object) {
    unsigned char close = object ? '}' : ']';
    if (depth >= JSON_DEPTH) return 0;
    c->at++;
    blanks(c);
    if (c->at < c->end && *c->at == close) {
        c->at++;
        return 1;
    }
    for (;;) {
        if (object) {
            if (c->at >= c->end || *c->at != '"' || !string(c)) return 0;
            blanks(c);
            if (c->at >= c->end || *c->at++ != ':') return 0;
            blanks(c);
        }
        if (!value(c, depth + 1)) return 0;
        blanks(c);
        if (c->at >= c->end) return 0;
        unsigned char b = *c->at++;
        if (b == close) return 1;
        if (b != ',') return 0;
        blanks(c);
    }
}

static int value(cursor *c, int depth) {
    if (c->at >= c->end) return 0;
    switch (*c->at) {
    case '{': return container(c, depth, 1);
    case '[': return container(c, depth, 0);
    case '"': return string(c);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default: return number(c);
    }
}

int circus_json_is_object(const char *text, size_t len) {
    if (len == 0) return 1;
    if (text == NULL) return 0;
    cursor c = {(const unsigned char *)text, (const unsigned char *)text + len};
    blanks(&c);
    if (c.at >= c.end || *c.at != '{' || !container(&c, 0, 1)) return 0;
    blanks(&c);
    return c.at == c.end;
}
