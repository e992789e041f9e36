// runhook example plugin in Go: a matcher and an evaluator.
//
// The same logic as the Rust examples `llm-errors` (matcher) and
// `output-score` (evaluator), so a rule gives the same result whichever
// language its plugin is written in. abi.go connects these two functions
// to the component's exports.
//
// Matcher config (all optional): {"run_types": ["llm"], "error_contains": "timeout"}
// Evaluator config (all optional): {"key": "answer_usefulness", "target_chars": 200,
//   "refusals": ["i don't know"]}
//
// Build: plugins/go/build.sh  ->  plugins/go/example/example.wasm

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

var defaultRefusals = []string{"i don't know", "i do not know", "i cannot", "i can't", "as an ai"}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func parse(run, config string) (map[string]any, map[string]any, error) {
	var r, c map[string]any
	if err := json.Unmarshal([]byte(run), &r); err != nil {
		return nil, nil, fmt.Errorf("run is not a JSON object: %v", err)
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		// A config that is not an object (null, most often) means defaults.
		c = map[string]any{}
	}
	if c == nil {
		c = map[string]any{}
	}
	return r, c, nil
}

// Matches selects LLM runs that errored.
func Matches(runText, configText string) (bool, error) {
	run, config, err := parse(runText, configText)
	if err != nil {
		return false, err
	}
	runType, _ := run["run_type"].(string)
	typeOK := false
	switch types := config["run_types"].(type) {
	case nil:
		typeOK = runType == "llm"
	case []any:
		for _, t := range types {
			if s, ok := t.(string); ok && s == runType {
				typeOK = true
			}
		}
	default:
		return false, fmt.Errorf("config.run_types must be a list of strings, got %s", jsonText(types))
	}
	var errorText string
	switch e := run["error"].(type) {
	case nil:
		return false, nil
	case string:
		if e == "" {
			return false, nil
		}
		errorText = strings.ToLower(e)
	default:
		errorText = strings.ToLower(jsonText(e))
	}
	textOK := true
	switch needle := config["error_contains"].(type) {
	case nil:
	case string:
		textOK = strings.Contains(errorText, strings.ToLower(needle))
	default:
		return false, fmt.Errorf("config.error_contains must be a string, got %s", jsonText(needle))
	}
	return typeOK && textOK, nil
}

func answerText(outputs any) (string, bool) {
	o, ok := outputs.(map[string]any)
	if !ok {
		return "", false
	}
	for _, field := range []string{"output", "answer", "text", "content"} {
		if s, ok := o[field].(string); ok {
			return s, true
		}
	}
	if gens, ok := o["generations"].([]any); ok && len(gens) > 0 {
		if first, ok := gens[0].([]any); ok && len(first) > 0 {
			if g, ok := first[0].(map[string]any); ok {
				if s, ok := g["text"].(string); ok {
					return s, true
				}
			}
		}
	}
	// The first string value, in key order (as the Rust example's map iterates).
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s, ok := o[k].(string); ok {
			return s, true
		}
	}
	return "", false
}

func feedback(key string, score float64, comment string) string {
	return jsonText([]map[string]any{{"key": key, "score": score, "comment": comment}})
}

// Evaluate scores the answer in the run's outputs.
func Evaluate(runText, configText string) (string, error) {
	run, config, err := parse(runText, configText)
	if err != nil {
		return "", err
	}
	key := "answer_usefulness"
	if k, present := config["key"]; present && k != nil {
		s, ok := k.(string)
		if !ok || s == "" {
			return "", fmt.Errorf("config.key must be a non-empty string, got %s", jsonText(k))
		}
		key = s
	}
	target := 200.0
	if t, present := config["target_chars"]; present && t != nil {
		n, ok := t.(float64)
		if !ok || n <= 0 {
			return "", fmt.Errorf("config.target_chars must be a positive number")
		}
		target = n
	}
	refusals := defaultRefusals
	if list, ok := config["refusals"].([]any); ok {
		refusals = nil
		for _, r := range list {
			if s, ok := r.(string); ok {
				refusals = append(refusals, strings.ToLower(s))
			}
		}
	}
	answer, found := answerText(run["outputs"])
	if !found {
		return feedback(key, 0, "no answer in outputs"), nil
	}
	lower := strings.ToLower(answer)
	for _, r := range refusals {
		if strings.Contains(lower, r) {
			return feedback(key, 0, fmt.Sprintf("refusal: %q", r)), nil
		}
	}
	chars := utf8.RuneCountInString(answer)
	score := math.Round(math.Min(float64(chars)/target, 1)*1000) / 1000
	return feedback(key, score, fmt.Sprintf("%d chars", chars)), nil
}
