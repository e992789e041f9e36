/* A small JSON reader and writer for runhook plugins in C.
 *
 * Plugins receive runs and configs as JSON text; C has no JSON in its
 * standard library, so this parses text into a tree of `json` values
 * (UTF-8 strings, numbers as doubles, objects keeping their key order) and
 * writes values and escaped strings back out. No dependencies beyond libc.
 */
#ifndef RUNHOOK_JSON_H
#define RUNHOOK_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json {
    json_type type;
    bool boolean;
    double number;
    char *string;        /* JSON_STRING: NUL-terminated UTF-8 */
    size_t length;       /* string length in bytes, or item count */
    struct json *items;  /* JSON_ARRAY and JSON_OBJECT values */
    char **keys;         /* JSON_OBJECT keys, parallel to items */
} json;

/* Parses `len` bytes of `text`; NULL when it is not valid JSON. */
json *json_parse(const char *text, size_t len);
void json_free(json *value);

/* The member `key` of an object, or NULL (also when `obj` is not an object). */
const json *json_get(const json *obj, const char *key);
/* Item `i` of an array, or NULL. */
const json *json_at(const json *arr, size_t i);
/* The string of a JSON_STRING value, or NULL. */
const char *json_str(const json *value);

/* A growable byte buffer for output. */
typedef struct {
    char *data;
    size_t len, cap;
} json_buf;

void buf_add(json_buf *b, const char *s, size_t n);
void buf_puts(json_buf *b, const char *s);
/* Appends `s` as a JSON string literal, quoted and escaped. */
void buf_json_string(json_buf *b, const char *s);
/* Appends `value` as compact JSON text. */
void buf_json(json_buf *b, const json *value);

#endif
