/* See json.h. */
#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
    int depth;
} parser;

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static bool parse_value(parser *ps, json *out);

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static void put_utf8(json_buf *b, uint32_t cp) {
    char s[4];
    size_t n;
    if (cp < 0x80) { s[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { s[0] = (char)(0xC0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12)); s[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        s[0] = (char)(0xF0 | (cp >> 18)); s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    buf_add(b, s, n);
}

/* Parses a string literal at ps->p (on the opening quote) into a new buffer. */
static char *parse_string(parser *ps, size_t *len) {
    json_buf b = {0};
    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) goto fail;
        if (c != '\\') { buf_add(&b, ps->p++, 1); continue; }
        if (++ps->p >= ps->end) goto fail;
        char e = *ps->p++;
        switch (e) {
        case '"': buf_add(&b, "\"", 1); break;
        case '\\': buf_add(&b, "\\", 1); break;
        case '/': buf_add(&b, "/", 1); break;
        case 'b': buf_add(&b, "\b", 1); break;
        case 'f': buf_add(&b, "\f", 1); break;
        case 'n': buf_add(&b, "\n", 1); break;
        case 'r': buf_add(&b, "\r", 1); break;
        case 't': buf_add(&b, "\t", 1); break;
        case 'u': {
            if (ps->end - ps->p < 4) goto fail;
            int cp = hex4(ps->p);
            if (cp < 0) goto fail;
            ps->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                int lo = hex4(ps->p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    ps->p += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate */
            put_utf8(&b, (uint32_t)cp);
            break;
        }
        default: goto fail;
        }
    }
    if (ps->p >= ps->end) goto fail;
    ps->p++;
    buf_add(&b, "", 1); /* NUL */
    *len = b.len - 1;
    return b.data;
fail:
    free(b.data);
    return NULL;
}

static bool push(json *container, json value, char *key) {
    size_t n = container->length + 1;
    json *items = realloc(container->items, n * sizeof(json));
    if (!items) return false;
    container->items = items;
    if (container->type == JSON_OBJECT) {
        char **keys = realloc(container->keys, n * sizeof(char *));
        if (!keys) return false;
        container->keys = keys;
        keys[n - 1] = key;
    }
    items[n - 1] = value;
    container->length = n;
    return true;
}

static void free_inner(json *v);

static bool parse_container(parser *ps, json *out, char close) {
    bool object = close == '}';
    out->type = object ? JSON_OBJECT : JSON_ARRAY;
    if (++ps->depth > 128) return false;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return true; }
    for (;;) {
        char *key = NULL;
        size_t key_len;
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"' || !(key = parse_string(ps, &key_len))) return false;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { free(key); return false; }
            ps->p++;
        }
        json item = {0};
        if (!parse_value(ps, &item) || !push(out, item, key)) { free(key); free_inner(&item); return false; }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return true; }
        return false;
    }
}

static bool parse_value(parser *ps, json *out) {
    skip_ws(ps);
    if (ps->p >= ps->end) return false;
    switch (*ps->p) {
    case '{': return parse_container(ps, out, '}');
    case '[': return parse_container(ps, out, ']');
    case '"':
        out->type = JSON_STRING;
        return (out->string = parse_string(ps, &out->length)) != NULL;
    case 't': out->type = JSON_BOOL; out->boolean = true; return literal(ps, "true");
    case 'f': out->type = JSON_BOOL; out->boolean = false; return literal(ps, "false");
    case 'n': out->type = JSON_NULL; return literal(ps, "null");
    default: {
        char tmp[64];
        size_t n = 0;
        while (ps->p + n < ps->end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", ps->p[n])) n++;
        if (n == 0) return false;
        memcpy(tmp, ps->p, n);
        tmp[n] = 0;
        char *end;
        out->type = JSON_NUMBER;
        out->number = strtod(tmp, &end);
        if (end != tmp + n) return false;
        ps->p += n;
        return true;
    }
    }
}

json *json_parse(const char *text, size_t len) {
    parser ps = {text, text + len, 0};
    json *v = calloc(1, sizeof(json));
    if (!v) return NULL;
    if (!parse_value(&ps, v)) { json_free(v); return NULL; }
    skip_ws(&ps);
    if (ps.p != ps.end) { json_free(v); return NULL; }
    return v;
}

static void free_inner(json *v) {
    free(v->string);
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (size_t i = 0; i < v->length; i++) {
            free_inner(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
}

void json_free(json *v) {
    if (!v) return;
    free_inner(v);
    free(v);
}

const json *json_get(const json *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->length; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const json *json_at(const json *arr, size_t i) {
    return arr && arr->type == JSON_ARRAY && i < arr->length ? &arr->items[i] : NULL;
}

const char *json_str(const json *v) {
    return v && v->type == JSON_STRING ? v->string : NULL;
}

void buf_add(json_buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) abort();
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void buf_puts(json_buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_json_string(json_buf *b, const char *s) {
    buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') buf_puts(b, "\\\"");
        else if (c == '\\') buf_puts(b, "\\\\");
        else if (c == '\n') buf_puts(b, "\\n");
        else if (c == '\r') buf_puts(b, "\\r");
        else if (c == '\t') buf_puts(b, "\\t");
        else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_puts(b, esc);
        } else buf_add(b, (const char *)&c, 1);
    }
    buf_add(b, "\"", 1);
}

void buf_json(json_buf *b, const json *v) {
    char num[32];
    switch (v->type) {
    case JSON_NULL: buf_puts(b, "null"); break;
    case JSON_BOOL: buf_puts(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER: snprintf(num, sizeof num, "%.17g", v->number); buf_puts(b, num); break;
    case JSON_STRING: buf_json_string(b, v->string); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        buf_add(b, v->type == JSON_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->length; i++) {
            if (i) buf_add(b, ",", 1);
            if (v->type == JSON_OBJECT) { buf_json_string(b, v->keys[i]); buf_add(b, ":", 1); }
            buf_json(b, &v->items[i]);
        }
        buf_add(b, v->type == JSON_ARRAY ? "]" : "}", 1);
        break;
    }
}
