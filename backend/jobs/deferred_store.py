"""How deferred-renderer jobs reach the model store that holds their frozen base model."""

from __future__ import annotations

from ..errors import ModelMissing
from ..models.store import ModelStore
from .registry import JobContext


def model_store(context: JobContext) -> ModelStore:
    """The server's model store, which its reference resolver carries as ``models``."""
    store = getattr(context.resolve, "models", None)
    if not isinstance(store, ModelStore):
        raise ModelMissing("this backend gives jobs no model store", "run the job through 'avatar-foundry serve'", field="base")
    return store
