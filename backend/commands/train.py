"""``avatar-foundry train <model>``: one subcommand per trainer.

Each trainer's module has ``register_train(subparsers)``; add it to TRAINER_MODULES.
"""

from __future__ import annotations

import argparse
import importlib

TRAINER_MODULES: tuple[str, ...] = ("backend.commands.train_eg3d", "backend.commands.train_deferred", "backend.commands.train_style_prior",
                                    "backend.commands.train_nphm")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (also under torchrun for several GPUs)")
    trainers = parser.add_subparsers(dest="trainer", required=True, metavar="MODEL")
    for module_name in TRAINER_MODULES:
        importlib.import_module(module_name).register_train(trainers)
