"""``avatar-foundry models add|list|remove``: the model store of local diffusion weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models.store import ROLES


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the backend's data folder; the store is its models/ folder (default: the per-user data folder)")


def store_from_args(args: argparse.Namespace):
    from ..data_dir import DataDir
    from ..models.store import ModelStore

    return ModelStore(DataDir.at(args.data_dir).models_dir)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="register and list local Stable Diffusion / ControlNet / LoRA / embedding / VAE weights")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    add = commands.add_parser("add", help="register a diffusers folder or a .safetensors file under a name")
    add.add_argument("path", type=Path, help="diffusers folder, or .safetensors checkpoint, LoRA, embedding or VAE")
    add.add_argument("--as", dest="name", required=True, help="the name jobs refer to it by")
    add.add_argument("--role", choices=ROLES, default=None,
                     help="what the model is (default: recognised from its files where they tell, see 'models scan')")
    add.add_argument("--config", type=Path, default=None,
                     help="for a single-file checkpoint: a local diffusers folder of the same architecture (configs, tokenizer)")
    add.add_argument("--replace", action="store_true", help="replace a model already registered under this name")
    add_store_argument(add)
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list registered models")
    add_store_argument(listing)
    listing.set_defaults(func=_list)

    scan = commands.add_parser("scan", help="register every base model, ControlNet, LoRA, embedding and VAE a folder holds, recognised by their files")
    scan.add_argument("folder", type=Path, help="a models folder (A1111, ComfyUI, a Hugging Face cache or your own), walked recursively")
    add_store_argument(scan)
    scan.set_defaults(func=_scan)

    convert = commands.add_parser("convert", help="turn a pickled .pth/.ckpt checkpoint (e.g. an official ControlNet) into .safetensors")
    convert.add_argument("file", type=Path, help="the pickled checkpoint; read with torch.load(weights_only=True), tensors only")
    convert.add_argument("--out", type=Path, default=None, help="the .safetensors file to write (default: beside FILE); for NPHM the checkpoint folder")
    convert.add_argument("--nphm-expression", type=Path, default=None,
                         help="NPHM: FILE is the released identity checkpoint, this the expression one (checkpoint_epoch_<N>.tar)")
    convert.add_argument("--nphm-anchors", type=Path, default=None, help="NPHM: the mean anchors (assets/anchors_39.npy of the NPHM repository)")
    convert.set_defaults(func=_convert)

    remove = commands.add_parser("remove", help="forget a model (its files are left alone)")
    remove.add_argument("name")
    add_store_argument(remove)
    remove.set_defaults(func=_remove)


def _add(args: argparse.Namespace) -> int:
    entry = store_from_args(args).add(args.path, args.name, args.role or _recognised_role(args.path), config=args.config,
                                      replace=args.replace)
    print(f"added {entry.name} ({entry.role}, {entry.format}): {entry.path}")
    _print_notes(entry)
    return 0


def _print_notes(entry) -> None:
    """What a registered model needs before a job can use it."""
    from ..errors import InvalidInput
    from ..models.diffusion_loading import require_vae_if_missing

    if entry.role == "base":
        try:
            require_vae_if_missing(entry, None)
        except InvalidInput as missing:
            print(f"  note: {missing.message}; {missing.hint}")


def _recognised_role(path: Path) -> str:
    from ..errors import InvalidInput, ModelMissing
    from ..models.discovery import Unrecognised, recognise
    from ..models.store import named_path

    if not path.exists():
        raise ModelMissing(f"{path} does not exist", "check the path; models are never downloaded", field="path")
    role = recognise(named_path(path))
    if isinstance(role, Unrecognised):
        raise InvalidInput(f"cannot tell what {path.name} is: {role.reason}", f"pass --role ({', '.join(ROLES)})", field="role")
    return role


def _list(args: argparse.Namespace) -> int:
    entries = store_from_args(args).list()
    if not entries:
        print("no models registered; add one with 'avatar-foundry models add PATH --as NAME --role ROLE'")
    for entry in entries:
        print(f"{entry.name:24} {entry.role:18} {entry.format:12} {entry.path}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from ..models.discovery import scan_folder

    report = scan_folder(store_from_args(args), args.folder)
    for entry in report.added:
        print(f"added   {entry.name:24} {entry.role:18} {entry.path}")
        _print_notes(entry)
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    print(f"{len(report.added)} model(s) added, {len(report.skipped)} skipped")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from ..models.pickled_conversion import convert_to_safetensors

    if args.nphm_expression or args.nphm_anchors:
        return _convert_nphm(args)

    target = convert_to_safetensors(args.file, args.out)
    print(f"wrote {target}; register it with 'avatar-foundry models add {target} --as NAME' (or models scan)")
    return 0


def _convert_nphm(args: argparse.Namespace) -> int:
    from ..errors import InvalidInput
    from ..models.nphm.official import convert_official_nphm

    if not (args.nphm_expression and args.nphm_anchors):
        raise InvalidInput("an NPHM conversion needs both --nphm-expression and --nphm-anchors",
                           "pass the expression checkpoint and assets/anchors_39.npy beside the identity checkpoint", field="nphm")
    target = convert_official_nphm(args.file, args.nphm_expression, args.nphm_anchors, args.out or args.file.with_suffix(""))
    print(f"wrote {target}; register it with 'avatar-foundry models add {target} --as NAME --role nphm'")
    return 0


def _remove(args: argparse.Namespace) -> int:
    entry = store_from_args(args).remove(args.name)
    print(f"removed {entry.name} (files kept at {entry.path})")
    return 0
