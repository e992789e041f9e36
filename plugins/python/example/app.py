"""runhook example plugin in Python: a matcher and an evaluator.

The same logic as the Rust examples `llm-errors` (matcher) and
`output-score` (evaluator), so a rule gives the same result whichever
language its plugin is written in.

Matcher config (all optional): {"run_types": ["llm"], "error_contains": "timeout"}
  Selects runs whose run_type is in run_types (default ["llm"]) and whose error is
  set; with error_contains, the error must also contain it (case-insensitive).

Evaluator config (all optional): {"key": "answer_usefulness", "target_chars": 200,
  "refusals": ["i don't know"]}
  Scores the answer in the run's outputs in [0, 1]: 0 for no answer or a refusal,
  else its length over target_chars, capped at 1. Returns one feedback under key.

Build: plugins/python/build.sh  ->  plugins/python/example/example.wasm
"""

import json
import math

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host

DEFAULT_REFUSALS = ["i don't know", "i do not know", "i cannot", "i can't", "as an ai"]


def _json_text(value):
    """A JSON value as compact text, as the Rust examples print it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Matcher(exports.Matcher):
    def matches(self, run: str, config: str) -> bool:
        run, config = json.loads(run), json.loads(config) or {}
        run_type = run.get("run_type") or ""
        run_types = config.get("run_types")
        if run_types is None:
            type_ok = run_type == "llm"
        elif isinstance(run_types, list):
            type_ok = run_type in [t for t in run_types if isinstance(t, str)]
        else:
            raise Err(f"config.run_types must be a list of strings, got {_json_text(run_types)}")
        error = run.get("error")
        if error is None or error == "":
            return False
        error = (error if isinstance(error, str) else _json_text(error)).lower()
        needle = config.get("error_contains")
        if needle is None:
            text_ok = True
        elif isinstance(needle, str):
            text_ok = needle.lower() in error
        else:
            raise Err(f"config.error_contains must be a string, got {_json_text(needle)}")
        return type_ok and text_ok


def _answer_text(outputs):
    if not isinstance(outputs, dict):
        return None
    for field in ("output", "answer", "text", "content"):
        if isinstance(outputs.get(field), str):
            return outputs[field]
    try:
        text = outputs["generations"][0][0]["text"]
        if isinstance(text, str):
            return text
    except (KeyError, IndexError, TypeError):
        pass
    # The first string value, in key order (as the Rust example's map iterates).
    for key in sorted(outputs):
        if isinstance(outputs[key], str):
            return outputs[key]
    return None


def _feedback(key, score, comment):
    return _json_text([{"key": key, "score": score, "comment": comment}])


class Evaluator(exports.Evaluator):
    def evaluate(self, run: str, config: str) -> str:
        run, config = json.loads(run), json.loads(config) or {}
        key = config.get("key", "answer_usefulness")
        if not isinstance(key, str) or not key:
            raise Err(f"config.key must be a non-empty string, got {_json_text(key)}")
        target = config.get("target_chars", 200)
        if isinstance(target, bool) or not isinstance(target, (int, float)) or target <= 0:
            raise Err("config.target_chars must be a positive number")
        refusals = config.get("refusals")
        if isinstance(refusals, list):
            refusals = [r.lower() for r in refusals if isinstance(r, str)]
        else:
            refusals = DEFAULT_REFUSALS
        answer = _answer_text(run.get("outputs"))
        if answer is None:
            return _feedback(key, 0.0, "no answer in outputs")
        lower = answer.lower()
        for refusal in refusals:
            if refusal in lower:
                host.log(host.Level.DEBUG, f"refusal found: {refusal}")
                return _feedback(key, 0.0, f'refusal: "{refusal}"')
        score = min(len(answer) / target, 1.0)
        score = math.floor(score * 1000.0 + 0.5) / 1000.0
        return _feedback(key, score, f"{len(answer)} chars")
