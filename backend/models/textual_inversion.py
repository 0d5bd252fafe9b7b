"""Textual-inversion embeddings: new words for the text encoder, used by name in prompts.

An embedding file holds one or more vectors of the text encoder's width: A1111 saves them under
``emb_params`` (or ``string_to_param.*``), diffusers under the token itself. As in A1111, the
embedding's name is its trigger word: an embedding registered as ``EasyNegative`` (the file
``embeddings/EasyNegative.safetensors`` scanned) is used wherever a prompt or negative prompt has the
word ``EasyNegative``, in any case as CLIP reads text lower-cased; ComfyUI's ``embedding:EasyNegative``
says the same. The vectors enter through
diffusers' textual-inversion loading, which adds the word (and ``word_1``... for more vectors) to
the tokenizer and its vectors to the text encoder.

An embedding only fits text encoders of its width: 768 for SD 1.x (CLIP ViT-L), 1024 for SD 2.x
(OpenCLIP ViT-H); one of another width is refused before a job writes anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from ..errors import InvalidInput
from .store import ModelEntry, tensor_shapes

_FAMILY_OF_WIDTH = {768: "SD 1.x", 1024: "SD 2.x"}
_COMFY_SYNTAX = re.compile(r"embedding:([A-Za-z0-9][A-Za-z0-9_.-]*?)(?:\.safetensors|\.pt|\.bin)?(?![A-Za-z0-9_.-])")
_BEFORE_WORD = r"(?<![A-Za-z0-9_.\-])"
_AFTER_WORD = r"(?![A-Za-z0-9_\-])(?!\.[A-Za-z0-9])"


def check_embedding_file(path: Path) -> None:
    """One embedding: a single tensor of one or more vectors; anything else is named."""
    from .file_kinds import check_kind_fits_role, weights_kind

    shapes = tensor_shapes(path)
    check_kind_fits_role(path, "embedding", weights_kind(shapes))
    if len(_vector_shape(shapes)) not in (1, 2):
        raise InvalidInput(f"{path.name} holds a tensor of shape {_vector_shape(shapes)}, not embedding vectors",
                           "use a textual-inversion embedding (one row per vector)", field="path")


def _vector_name(shapes: dict[str, list[int]]) -> str:
    for name in ("emb_params", "string_to_param.*", "string_to_param"):
        if name in shapes:
            return name
    return next(iter(shapes))


def _vector_shape(shapes: dict[str, list[int]]) -> list[int]:
    return list(shapes[_vector_name(shapes)])


def embedding_width(path: Path) -> int:
    return int(_vector_shape(tensor_shapes(path))[-1])


def embedding_vectors(path: Path) -> Any:
    """The embedding's vectors as a (count, width) tensor."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        vectors = handle.get_tensor(_vector_name({name: [] for name in handle.keys()}))
    return vectors.reshape(-1, vectors.shape[-1])


def prompt_for_embeddings(text: str) -> str:
    """The prompt as the text encoder reads it with embeddings loaded: ComfyUI's ``embedding:name`` (optionally
    with the file's suffix) as the plain word, all lower case (CLIP's tokenizer lower-cases text anyway, and
    diffusers finds the extra vectors of a multi-vector embedding only by its lower-case word)."""
    return _COMFY_SYNTAX.sub(r"\1", text).lower()


def triggers_in(texts: Iterable[str], names: Iterable[str]) -> list[str]:
    """The embedding names used as words in any of ``texts`` (plain or in ComfyUI's syntax, any case), sorted."""
    plain = [prompt_for_embeddings(text) for text in texts]
    return sorted(name for name in names
                  if any(re.search(_BEFORE_WORD + re.escape(name.lower()) + _AFTER_WORD, text) for text in plain))


def text_encoder_width(base: ModelEntry) -> int | None:
    """The width of the base model's text encoder, from its config or file header (no weights read)."""
    config_folder = base.config if base.format == "single-file" else base.path
    if config_folder is not None:
        config = json.loads((config_folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
        return int(config["hidden_size"])
    shapes = tensor_shapes(base.path)
    for name in ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", "cond_stage_model.model.token_embedding.weight"):
        if name in shapes:
            return int(shapes[name][-1])
    return None


def check_embeddings_fit(base: ModelEntry, embeddings: list[ModelEntry]) -> None:
    """Refuse an embedding made for a text encoder of another width than the base model's."""
    width = text_encoder_width(base)
    for embedding in embeddings:
        own = embedding_width(embedding.path)
        if width is not None and own != width:
            raise InvalidInput(
                f"embedding {embedding.name!r} is made for a {own}-wide text encoder{_family(own)}, but base model {base.name!r} "
                f"has a {width}-wide one{_family(width)}",
                f"use an embedding made for the base model's family, or remove '{embedding.name}' from the prompts", field="embeddings")


def _family(width: int) -> str:
    return f" ({_FAMILY_OF_WIDTH[width]})" if width in _FAMILY_OF_WIDTH else ""


def load_embeddings(pipeline: Any, embeddings: list[ModelEntry]) -> None:
    """Teach the pipeline's tokenizer and text encoder each embedding's trigger word."""
    for embedding in embeddings:
        try:
            pipeline.load_textual_inversion(embedding_vectors(embedding.path), token=embedding.name.lower())
        except ValueError as error:  # diffusers refuses a word the tokenizer already has
            raise InvalidInput(f"embedding {embedding.name!r} cannot be added as a new word ({str(error).splitlines()[0][:200]})",
                               "register the embedding under a name that is not an ordinary word", field="embeddings") from None
