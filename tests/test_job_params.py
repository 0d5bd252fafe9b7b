"""Every job kind's params are bounded: numbers have a range, strings, lists and mappings a length
limit, and NaN/infinite numbers are refused. So no request can ask for unbounded work (a run of
2**70 images), crash a job later (seed -1), or be stored and echoed back at any size."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.jobs.registry import MAX_SEED, all_kinds

KINDS = {kind.name: kind for kind in all_kinds()}


def unbounded_fields(schema: dict, path: str = "") -> list[str]:
    """Paths in a JSON schema of numbers without both bounds, or strings/arrays/objects without a size limit."""
    problems = []
    kind = schema.get("type")
    if "enum" not in schema and "const" not in schema:
        if kind in ("integer", "number"):
            if not ({"minimum", "exclusiveMinimum"} & schema.keys() and {"maximum", "exclusiveMaximum"} & schema.keys()):
                problems.append(f"{path}: number without both bounds")
        elif kind == "string" and "maxLength" not in schema:
            problems.append(f"{path}: string without maxLength")
        elif kind == "array" and "maxItems" not in schema:
            problems.append(f"{path}: array without maxItems")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict) and "maxProperties" not in schema:
            problems.append(f"{path}: mapping without maxProperties")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), dict):
            problems += unbounded_fields(schema[key], f"{path}.{key}")
    for index, option in enumerate(schema.get("anyOf", [])):
        problems += unbounded_fields(option, f"{path}|{index}")
    for name, field in schema.get("properties", {}).items():
        problems += unbounded_fields(field, f"{path}.{name}" if path else name)
    return problems


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_param_of_every_kind_has_bounds_or_a_length_limit(name):
    schema = KINDS[name].params.model_json_schema()
    assert "$defs" not in schema  # every field is inline, so the walk above sees all of them
    assert unbounded_fields(schema) == []


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kinds_defaults_lie_inside_its_bounds(name):
    """The bounds refuse only what a user asks for, never the defaults."""
    params = KINDS[name].params
    required = {field: "job:0123456789abcdef" for field, info in params.model_fields.items() if info.is_required()}
    if name == "multiview":
        required["style"] = "a cartoon head"
    params.model_validate(required)


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("generate-avatar", "mesh_level", float("inf")),
    ("generate-avatar", "mesh_level", float("nan")),
    ("generate-avatar", "seed", -1),
    ("generate-avatar", "seed", 2**70),
    ("generate-avatar", "seed", MAX_SEED + 1),
    ("train-eg3d", "total_images", 2**70),
    ("train-style-prior", "steps", 10**9),
    ("train-deferred", "steps", 10**9),
    ("train-eg3d", "dataset", "x" * 10_000),
    ("multiview", "negative_prompt", "bad " * 10_000),
])
def test_out_of_range_values_are_refused_naming_the_field(kind, field, value):
    params = KINDS[kind].params
    base = {name: "job:0123456789abcdef" for name, info in params.model_fields.items() if info.is_required()}
    if kind == "multiview":
        base["style"] = "a cartoon head"
    with pytest.raises(ValidationError) as caught:
        params.model_validate({**base, field: value})
    assert caught.value.errors()[0]["loc"][0] == field
