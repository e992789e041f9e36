/* runhook example plugin in C: a matcher and an evaluator.
 *
 * The same logic as the Rust examples `llm-errors` (matcher) and
 * `output-score` (evaluator), so a rule gives the same result whichever
 * language its plugin is written in. The bindings (gen/) are written by
 * `wit-bindgen c` from wit/runhook.wit; json.c parses the JSON arguments.
 * Case-insensitive comparisons fold ASCII letters only.
 *
 * Matcher config (all optional): {"run_types": ["llm"], "error_contains": "timeout"}
 * Evaluator config (all optional): {"key": "answer_usefulness", "target_chars": 200,
 *   "refusals": ["i don't know"]}
 *
 * Build: plugins/c/build.sh  ->  plugins/c/example/example.wasm
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "match_evaluate_plugin.h"

typedef match_evaluate_plugin_string_t wit_string;

static const char *DEFAULT_REFUSALS[] = {"i don't know", "i do not know", "i cannot", "i can't", "as an ai"};

/* Hands `b` (NUL-free text) to the component as a string it will free. */
static void give(wit_string *out, json_buf *b) {
    out->ptr = (uint8_t *)b->data;
    out->len = b->len;
}

static void fail(wit_string *err, const char *message, const json *value) {
    json_buf b = {0};
    buf_puts(&b, message);
    if (value) buf_json(&b, value);
    give(err, &b);
}

static char *lower_dup(const char *s) {
    char *out = strdup(s);
    for (char *p = out; p && *p; p++) *p = (char)tolower((unsigned char)*p);
    return out;
}

/* Parses the two arguments and frees them (the callee owns them). */
static bool parse_args(wit_string *run_text, wit_string *config_text, json **run, json **config, wit_string *err) {
    *run = json_parse((const char *)run_text->ptr, run_text->len);
    *config = json_parse((const char *)config_text->ptr, config_text->len);
    match_evaluate_plugin_string_free(run_text);
    match_evaluate_plugin_string_free(config_text);
    if (!*run) {
        json_free(*config);
        fail(err, "run is not valid JSON", NULL);
        return false;
    }
    return true;
}

bool exports_runhook_plugin_matcher_matches(wit_string *run_text, wit_string *config_text, bool *ret, wit_string *err) {
    json *run, *config;
    if (!parse_args(run_text, config_text, &run, &config, err)) return false;
    bool ok = false;
    const char *run_type = json_str(json_get(run, "run_type"));
    if (!run_type) run_type = "";
    const json *types = json_get(config, "run_types");
    bool type_ok = false;
    if (!types || types->type == JSON_NULL) {
        type_ok = strcmp(run_type, "llm") == 0;
    } else if (types->type == JSON_ARRAY) {
        for (size_t i = 0; i < types->length; i++) {
            const char *t = json_str(&types->items[i]);
            if (t && strcmp(t, run_type) == 0) type_ok = true;
        }
    } else {
        fail(err, "config.run_types must be a list of strings, got ", types);
        goto done;
    }
    const json *error = json_get(run, "error");
    if (!error || error->type == JSON_NULL || (error->type == JSON_STRING && error->length == 0)) {
        *ret = false;
        ok = true;
        goto done;
    }
    char *error_text;
    if (error->type == JSON_STRING) {
        error_text = lower_dup(error->string);
    } else {
        json_buf b = {0};
        buf_json(&b, error);
        buf_add(&b, "", 1);
        error_text = lower_dup(b.data);
        free(b.data);
    }
    const json *needle = json_get(config, "error_contains");
    bool text_ok = true;
    if (needle && needle->type == JSON_STRING) {
        char *n = lower_dup(needle->string);
        text_ok = strstr(error_text, n) != NULL;
        free(n);
    } else if (needle && needle->type != JSON_NULL) {
        free(error_text);
        fail(err, "config.error_contains must be a string, got ", needle);
        goto done;
    }
    free(error_text);
    *ret = type_ok && text_ok;
    ok = true;
done:
    json_free(run);
    json_free(config);
    return ok;
}

/* The answer text in a run's outputs, or NULL. */
static const char *answer_text(const json *outputs) {
    if (!outputs || outputs->type != JSON_OBJECT) return NULL;
    const char *fields[] = {"output", "answer", "text", "content"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *s = json_str(json_get(outputs, fields[i]));
        if (s) return s;
    }
    const char *generated = json_str(json_get(json_at(json_at(json_get(outputs, "generations"), 0), 0), "text"));
    if (generated) return generated;
    /* The first string value, in key order (as the Rust example's map iterates). */
    const char *best_key = NULL, *best = NULL;
    for (size_t i = 0; i < outputs->length; i++) {
        if (outputs->items[i].type == JSON_STRING && (!best_key || strcmp(outputs->keys[i], best_key) < 0)) {
            best_key = outputs->keys[i];
            best = outputs->items[i].string;
        }
    }
    return best;
}

/* Unicode scalar values in UTF-8 text. */
static size_t char_count(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static void feedback(wit_string *out, const char *key, double score, const char *comment) {
    char num[32];
    json_buf b = {0};
    buf_puts(&b, "[{\"key\":");
    buf_json_string(&b, key);
    snprintf(num, sizeof num, ",\"score\":%.3f,\"comment\":", score);
    buf_puts(&b, num);
    buf_json_string(&b, comment);
    buf_puts(&b, "}]");
    give(out, &b);
}

bool exports_runhook_plugin_evaluator_evaluate(wit_string *run_text, wit_string *config_text, wit_string *ret,
                                               wit_string *err) {
    json *run, *config;
    if (!parse_args(run_text, config_text, &run, &config, err)) return false;
    bool ok = false;
    const char *key = "answer_usefulness";
    const json *k = json_get(config, "key");
    if (k && k->type != JSON_NULL) {
        if (k->type != JSON_STRING || k->length == 0) {
            fail(err, "config.key must be a non-empty string, got ", k);
            goto done;
        }
        key = k->string;
    }
    double target = 200;
    const json *t = json_get(config, "target_chars");
    if (t && t->type != JSON_NULL) {
        if (t->type != JSON_NUMBER || !(t->number > 0)) {
            fail(err, "config.target_chars must be a positive number", NULL);
            goto done;
        }
        target = t->number;
    }
    const char *answer = answer_text(json_get(run, "outputs"));
    if (!answer) {
        feedback(ret, key, 0, "no answer in outputs");
        ok = true;
        goto done;
    }
    char *lower = lower_dup(answer);
    const json *custom = json_get(config, "refusals");
    size_t n = custom && custom->type == JSON_ARRAY ? custom->length : sizeof DEFAULT_REFUSALS / sizeof *DEFAULT_REFUSALS;
    for (size_t i = 0; i < n; i++) {
        const char *r = custom && custom->type == JSON_ARRAY ? json_str(&custom->items[i]) : DEFAULT_REFUSALS[i];
        if (!r) continue;
        char *refusal = lower_dup(r);
        if (strstr(lower, refusal)) {
            json_buf comment = {0};
            buf_puts(&comment, "refusal: \"");
            buf_puts(&comment, refusal);
            buf_add(&comment, "\"", 2); /* the quote and NUL */
            feedback(ret, key, 0, comment.data);
            free(comment.data);
            free(refusal);
            free(lower);
            ok = true;
            goto done;
        }
        free(refusal);
    }
    free(lower);
    size_t chars = char_count(answer);
    double score = round(fmin((double)chars / target, 1.0) * 1000.0) / 1000.0;
    char comment[48];
    snprintf(comment, sizeof comment, "%zu chars", chars);
    feedback(ret, key, score, comment);
    ok = true;
done:
    json_free(run);
    json_free(config);
    return ok;
}
