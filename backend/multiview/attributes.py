"""Facial attribute prompts for diversity: categories of options, of which a few are sampled per image.

StyleAvatar3D adds attribute phrases (hair, expression, accessories...) to every prompt so that the
images of one pose condition differ. A catalog maps a category to its options; ``sample_attributes``
picks ``count`` distinct categories and one option from each, reproducibly from a seed. Users can
give their own catalog as a JSON file ``{"category": ["option", ...], ...}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from blender_addon.formats.errors import FormatError

DEFAULT_ATTRIBUTES_PER_IMAGE = 5

DEFAULT_ATTRIBUTE_CATALOG: dict[str, tuple[str, ...]] = {
    "hair style": ("short hair", "long straight hair", "curly hair", "wavy hair", "ponytail", "bob cut", "buzz cut", "braided hair", "bun hairstyle", "spiky hair"),
    "hair colour": ("black hair", "brown hair", "blonde hair", "red hair", "silver hair", "blue hair", "pink hair", "white hair", "green hair"),
    "expression": ("smiling", "neutral expression", "serious expression", "laughing", "surprised expression", "calm expression"),
    "eye shape": ("round eyes", "almond-shaped eyes", "narrow eyes", "large eyes", "droopy eyes"),
    "eye colour": ("brown eyes", "blue eyes", "green eyes", "grey eyes", "amber eyes", "violet eyes"),
    "age": ("young", "teenage", "adult", "middle-aged", "elderly"),
    "gender presentation": ("masculine features", "feminine features", "androgynous features"),
    "face shape": ("round face", "oval face", "square jaw", "heart-shaped face", "long face"),
    "eyebrows": ("thick eyebrows", "thin eyebrows", "arched eyebrows", "straight eyebrows"),
    "nose": ("small nose", "button nose", "pointed nose", "broad nose"),
    "lips": ("full lips", "thin lips", "red lips", "pale lips"),
    "skin": ("fair skin", "tanned skin", "dark skin", "freckles", "rosy cheeks"),
    "facial hair": ("clean-shaven", "short beard", "goatee", "moustache", "stubble"),
    "glasses": ("round glasses", "square glasses", "sunglasses", "no glasses"),
    "headwear": ("baseball cap", "beanie", "headband", "hair clip", "no hat", "crown"),
    "earrings": ("earrings", "hoop earrings", "no earrings", "ear piercing"),
    "makeup": ("natural makeup", "eyeliner", "blush", "no makeup"),
    "clothing collar": ("hoodie", "turtleneck", "shirt collar", "scarf", "t-shirt"),
    "lighting": ("soft lighting", "studio lighting", "rim lighting", "warm lighting"),
    "mood": ("cheerful", "confident", "shy", "mysterious", "friendly"),
}


FACE_ONLY_CATEGORIES = frozenset({"expression", "eye shape", "eye colour", "eyebrows", "nose", "lips", "makeup", "facial hair"})
"""Categories describing the face itself: left out of back-view prompts, where the face is hidden."""


def validate_catalog(catalog: object, source: str = "attributes") -> dict[str, tuple[str, ...]]:
    """Check a catalog's shape: a non-empty object of non-empty lists of non-empty strings."""
    if not isinstance(catalog, dict) or not catalog:
        raise FormatError(source, "must be a JSON object mapping attribute categories to lists of options")
    checked: dict[str, tuple[str, ...]] = {}
    for category, options in catalog.items():
        field = f"{source}.{category}"
        if not isinstance(options, (list, tuple)) or not options:
            raise FormatError(field, "must be a non-empty list of option phrases")
        if not all(isinstance(option, str) and option.strip() for option in options):
            raise FormatError(field, "options must be non-empty strings")
        checked[str(category)] = tuple(option.strip() for option in options)
    return checked


def load_catalog(path: str | Path) -> dict[str, tuple[str, ...]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError("attributes", f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError("attributes", f"{path} is not valid JSON: {error}") from None
    return validate_catalog(data, "attributes")


def sample_attributes(catalog: dict[str, tuple[str, ...]], seed: int, count: int = DEFAULT_ATTRIBUTES_PER_IMAGE) -> list[tuple[str, str]]:
    """``count`` (category, option) pairs from distinct categories, in catalog order; same seed, same pairs."""
    if count < 0:
        raise FormatError("attributes_per_image", f"must be >= 0, got {count}")
    rng = random.Random(seed)
    categories = list(catalog)
    chosen = sorted(rng.sample(range(len(categories)), min(count, len(categories))))
    return [(categories[i], rng.choice(catalog[categories[i]])) for i in chosen]
