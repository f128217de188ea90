"""Validates OCSF events with an independent library: pydantic-ocsf's models of the published
OCSF schemas (1.4.0, the version Tocsin writes, and 1.7.0, the latest it ships).

Usage: python ocsf_check.py FILE  (one JSON object per line). Exits 0 when every event validates
as its class (class_uid, type_uid, required attributes, types and enums) and carries no attribute
the class does not define (outside `unmapped`, which is free-form by design); else prints each
problem and exits 1.
"""

import json
import sys

import pydantic
from ocsf.v1_4_0 import events as v1_4_0
from ocsf.v1_7_0 import events as v1_7_0

CLASSES = {
    0: "BaseEvent",
    2002: "VulnerabilityFinding",
    2004: "DetectionFinding",
}

# The models are built on first use; Base Event must be built before the classes that extend it
# (built after them, it misses a reference): resolve them here, in this order.
MODELS = [
    (version, {uid: getattr(module, name) for uid, name in CLASSES.items()})
    for version, module in (("1.4.0", v1_4_0), ("1.7.0", v1_7_0))
]


def unknown_attributes(model, path):
    """Attributes a validated model kept as extras (the models allow them; the schema does not)."""
    found = [f"{path}.{k}" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        if name == "unmapped":
            continue
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, pydantic.BaseModel):
                where = f"{path}.{name}" + (f"[{i}]" if isinstance(value, list) else "")
                found += unknown_attributes(item, where)
    return found


def main():
    problems = []
    count = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            count += 1
            event = json.loads(line)
            name = CLASSES.get(event.get("class_uid"))
            if name is None:
                problems.append(f"event {count}: class_uid {event.get('class_uid')} is not one Tocsin writes")
                continue
            for version, models in MODELS:
                try:
                    model = models[event["class_uid"]].model_validate(event)
                except pydantic.ValidationError as e:
                    problems.append(f"event {count} ({name}, OCSF {version}): {e}")
                    continue
                extra = unknown_attributes(model, name)
                if extra:
                    problems.append(f"event {count} ({name}, OCSF {version}): not in the schema: {extra}")
    for p in problems:
        print(p)
    print(f"{count} events checked, {len(problems)} problems")
    sys.exit(1 if problems or count == 0 else 0)


main()
