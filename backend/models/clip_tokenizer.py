"""The real CLIP tokenizer, built offline from the BPE vocabulary open_clip_torch ships.

Single-file checkpoints carry no tokenizer, and nothing may be downloaded. The vocabulary is
``bpe_simple_vocab_16e6.txt.gz`` in the ``open_clip`` package folder; the package is located, never
imported (``build.py setup`` installs it with ``--no-deps``: its torchvision dependency does not fit a
CPU torch). The vocabulary is CLIP's: the 256 byte symbols, their end-of-word forms, the first
48 894 merges and the two special tokens, 49 408 ids in all (SD 1.x and SD 2.x use the same ids).
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ModelMissing
from .tiny import byte_symbols

VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCABULARY_SIZE = 49408
_MERGE_COUNT = VOCABULARY_SIZE - 2 * 256 - 2
INSTALL_HINT = "install the vocabulary with 'pip install --no-deps open_clip_torch' (python build.py setup does)"


def vocabulary_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / VOCABULARY_FILE
        if path.is_file():
            return path
    raise ModelMissing(f"the CLIP vocabulary {VOCABULARY_FILE} is not installed; a single-file checkpoint has no tokenizer",
                       INSTALL_HINT, field="tokenizer")


@lru_cache(maxsize=1)
def clip_merges() -> tuple[tuple[str, str], ...]:
    lines = gzip.decompress(vocabulary_path().read_bytes()).decode("utf-8").split("\n")
    return tuple(tuple(line.split()) for line in lines[1:1 + _MERGE_COUNT])


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """CLIP's tokenizer (77 tokens); SD 2.x pads with '!' where SD 1.x pads with the end token."""
    from transformers import CLIPTokenizer

    symbols = sorted(byte_symbols())  # CLIP's id order: by the symbol's code point (printable bytes first)
    merges = clip_merges()
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocabulary = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocabulary, merges=list(merges), model_max_length=77, pad_token=pad_token)
