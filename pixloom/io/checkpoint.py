"""Checkpoint directories: config.json + model.safetensors [+ training/], manifest.json last.

Layout (DESIGN.md "Checkpoints"):
    config.json            family, model config, dataset, text encoder, provenance, format
    model.safetensors      inference (EMA) weights
    training/state.safetensors + training/state.json   optional resume state, no pickle
    manifest.json          sha256 and size of every file above; written last

A directory without a valid manifest is not a checkpoint. Saving writes everything into a
temporary sibling directory, fsyncs every file and directory, writes the manifest, and then
publishes it. Replacing an existing checkpoint uses renameat2(RENAME_EXCHANGE) on Linux, which
swaps the two directories in one step, so a reader always finds a complete checkpoint at the
path (old or new) and a SIGKILL at any moment leaves the previous one loadable (T1). Where the
exchange is unavailable (other OSes, some filesystems) the old directory is renamed aside and
the new one renamed in: a window of two renames with nothing at the path, never a torn one.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pixloom import __version__
from pixloom.errors import CheckpointError, InvalidValue, PixloomError
from pixloom.families import TEXT_TO_IMAGE_FAMILIES
from pixloom.io.safe_files import detect_format, read_safetensors_header
from pixloom.io.state import flatten_state, unflatten_state

FORMAT = "pixloom-checkpoint"
FORMAT_VERSION = 1
MANIFEST_FORMAT = "pixloom-manifest"
REPLACED_RETRIES = 3  # loads restarted when a writer replaces the checkpoint meanwhile
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
STATE_TENSORS_FILE = "training/state.safetensors"
STATE_SKELETON_FILE = "training/state.json"
MAX_JSON_BYTES = 64 * 2**20  # config, manifest and state skeleton


@dataclasses.dataclass
class Checkpoint:
    """A loaded, verified checkpoint directory."""

    path: Path
    config: dict[str, Any]  # the full config.json
    weights: dict[str, torch.Tensor]  # empty when loaded with weights=False
    training_state: Any | None  # None unless loaded with training_state=True
    manifest: dict[str, Any]
    sha256: str  # of model.safetensors; goes into PNG metadata

    @property
    def family(self) -> str:
        """The model family named in config.json."""
        return self.config["family"]

    @property
    def model_config(self) -> dict[str, Any]:
        """The model's own config dict (config.json "model")."""
        return self.config["model"]


# ---------------------------------------------------------------------------- writing


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, allow_nan=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())


def _temporary_sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace the file at `path` with `text` atomically (temp file, fsync, rename, fsync dir)."""
    path = Path(path)
    _remove_stale_temporaries(path)
    temporary = _temporary_sibling(path, "tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_config(config: Any) -> dict[str, Any]:
    """config.json content with the format fields added; refuses what could not be reloaded."""
    if not isinstance(config, dict):
        raise InvalidValue("config", type(config).__name__, "a dict with 'family' and 'model'")
    if not isinstance(config.get("family"), str) or not config["family"]:
        raise InvalidValue("config.family", config.get("family"), "a model family name")
    if not isinstance(config.get("model"), dict):
        raise InvalidValue("config.model", config.get("model"), "the model's config as a dict")
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "pixloom_version": __version__}
    full.update({k: v for k, v in config.items() if k not in full})
    try:
        json.dumps(full, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidValue("config", str(error), "JSON-serializable values only") from None
    return full


def _detached_weights(weights: Any) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors with no shared storage (which safetensors refuses)."""
    if not isinstance(weights, dict):
        raise InvalidValue("weights", type(weights).__name__, "a dict of name -> Tensor")
    result, seen = {}, set()
    for name, tensor in weights.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise InvalidValue(f"weights[{name!r}]", type(tensor).__name__, "a str -> Tensor")
        tensor = tensor.detach().to("cpu").contiguous()
        storage = (tensor.untyped_storage().data_ptr(), tensor.device.type)
        if storage in seen or tensor.numel() == 0:
            tensor = tensor.clone()
        seen.add(storage)
        result[name] = tensor
    return result


def _write_contents(
    directory: Path, config: dict, weights: dict, training_state: Any | None
) -> None:
    """Every checkpoint file (fsynced), then manifest.json with their sha256 and sizes."""
    from safetensors.torch import save_file

    _write_json(directory / CONFIG_FILE, config)
    save_file(weights, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    _fsync_file(directory / WEIGHTS_FILE)
    names = [CONFIG_FILE, WEIGHTS_FILE]
    if training_state is not None:
        tensors, skeleton = flatten_state(training_state)
        (directory / "training").mkdir()
        save_file(tensors, str(directory / STATE_TENSORS_FILE), metadata={"format": "pt"})
        _fsync_file(directory / STATE_TENSORS_FILE)
        _write_json(directory / STATE_SKELETON_FILE, skeleton)
        _fsync_directory(directory / "training")
        names += [STATE_TENSORS_FILE, STATE_SKELETON_FILE]
    files = {
        name: {"sha256": _sha256(directory / name), "size": (directory / name).stat().st_size}
        for name in names
    }
    manifest = {"format": MANIFEST_FORMAT, "format_version": FORMAT_VERSION, "files": files}
    _write_json(directory / MANIFEST_FILE, manifest)
    _fsync_directory(directory)


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temp/old siblings of `target` left by saves whose process is gone (killed)."""
    for sibling in target.parent.glob(f".{glob.escape(target.name)}.*-*-*"):
        kind_and_pid = sibling.name[len(target.name) + 2 :].split("-")
        if kind_and_pid[0] not in ("tmp", "old") or not kind_and_pid[1].isdigit():
            continue
        pid = int(kind_and_pid[1])
        alive = pid != os.getpid()
        if alive:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive = False
            except OSError:
                pass
        if alive:
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)


def _publish(temporary: Path, target: Path) -> None:
    """Move the finished temporary directory to `target`, replacing an old checkpoint."""
    if not target.exists():
        os.rename(temporary, target)
    else:
        replaceable = target.is_dir() and (
            not any(target.iterdir()) or (target / MANIFEST_FILE).exists()
        )
        if not replaceable:
            raise CheckpointError(
                f"refusing to replace {target}: it exists and is not a pixloom checkpoint"
            )
        if _exchange(temporary, target):
            shutil.rmtree(temporary, ignore_errors=True)  # now holds the previous checkpoint
        else:
            old = _temporary_sibling(target, "old")
            os.rename(target, old)
            try:
                os.rename(temporary, target)
            except OSError:
                os.rename(old, target)  # put the previous checkpoint back
                raise
            shutil.rmtree(old, ignore_errors=True)
    _fsync_directory(target.parent)


def save_checkpoint(
    directory: str | Path,
    *,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (manifest last) and return its path.

    Args:
        directory: the checkpoint path; an existing checkpoint there is replaced atomically.
        config: config.json content: {"family", "model", optional "dataset", "text_encoder",
            "training", "provenance"}; "format" and "pixloom_version" are added here.
        weights: inference weights (state_dict), saved as model.safetensors.
        training_state: nested dict/list/tuple of tensors, ints, floats, bools, str, None
            (dict keys str or int), saved as training/ without pickle; round-trips exactly.
    """
    target = Path(directory)
    if target.is_symlink():  # write where the link points and keep the link
        target = target.resolve()
    full_config = _check_config(config)
    weights = _detached_weights(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    temporary = _temporary_sibling(target, "tmp")
    temporary.mkdir()
    try:
        _write_contents(temporary, full_config, weights, training_state)
        _publish(temporary, target)
    except PixloomError:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    except OSError as error:  # disk full, permissions: the previous checkpoint is untouched
        shutil.rmtree(temporary, ignore_errors=True)
        raise CheckpointError(f"could not write checkpoint {target}: {error}") from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return Path(directory)


# ---------------------------------------------------------------------------- reading


def _read_json(path: Path, what: str) -> Any:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {what} of {size} bytes exceeds {MAX_JSON_BYTES}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({error})") from None


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, structurally validated; a missing one means 'not a checkpoint'."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} has no {MANIFEST_FILE}: it is not a complete checkpoint (an "
            "interrupted save leaves none, and a checkpoint without its manifest does not exist)"
        )
    manifest = _read_json(path, MANIFEST_FILE)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
        raise CheckpointError(f"{path} is not a {MANIFEST_FORMAT} (format or files missing)")
    for name, entry in files.items():
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or not parts:
            raise CheckpointError(f"{path} lists an unsafe file name {name!r}")
        valid = (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
        )
        if not valid:
            raise CheckpointError(f"{path}: entry {name!r} needs a sha256 string and a size")
    return manifest


def _verify_file(directory: Path, manifest: dict, name: str, verify: bool) -> Path:
    """Path of `name` after checking it is listed, present, the right size (and sha256)."""
    entry = manifest["files"].get(name)
    if entry is None:
        raise CheckpointError(f"{directory}: {name} is not listed in {MANIFEST_FILE}")
    path = directory / name
    if not path.is_file():
        raise CheckpointError(f"{directory}: {name} is listed in the manifest but missing")
    size = path.stat().st_size
    if size != entry["size"]:
        raise CheckpointError(
            f"{directory}: {name} is {size} bytes, the manifest says {entry['size']} "
            "(truncated or modified after saving)"
        )
    if verify and _sha256(path) != entry["sha256"]:
        raise CheckpointError(
            f"{directory}: {name} does not match its sha256 in the manifest (modified or corrupt)"
        )
    return path


def _check_loaded_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} config (format field missing or wrong)")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version={version!r}; this pixloom reads <= {FORMAT_VERSION}, "
            "upgrade pixloom to load it"
        )
    if not isinstance(config.get("family"), str):
        raise InvalidValue("config.json:family", config.get("family"), "a model family name")
    if not isinstance(config.get("model"), dict):
        raise InvalidValue("config.json:model", config.get("model"), "the model config object")
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint safetensors file, validated by magic bytes and header first."""
    from safetensors.torch import load_file

    if detect_format(path) != "safetensors":
        raise CheckpointError(f"{path} is not a safetensors file")
    read_safetensors_header(path)
    return load_file(str(path), device="cpu")


def load_checkpoint(
    directory: str | Path,
    *,
    training_state: bool = False,
    verify: bool = True,
    weights: bool = True,
) -> Checkpoint:
    """Load a checkpoint directory, refusing incomplete or tampered ones; never unpickles.

    Args:
        directory: the checkpoint directory.
        training_state: also load training/ (CheckpointError if the checkpoint has none).
        verify: check every file read against its sha256 in the manifest (sizes are always
            checked); False skips hashing for speed.
        weights: load model.safetensors; False leaves Checkpoint.weights empty (inspection).
    """
    path = Path(directory)
    for attempt in range(REPLACED_RETRIES + 1):
        if not path.is_dir():
            raise CheckpointError(f"no checkpoint at {path}: not a directory")
        manifest = _read_manifest(path)
        # A writer may swap in a newer checkpoint between two of our reads: the manifest then
        # differs afterwards and the load starts over, so the files come from one version.
        try:
            loaded = _load_files(path, manifest, training_state, verify, weights)
        except (CheckpointError, OSError):
            if attempt == REPLACED_RETRIES or _manifest_or_none(path) == manifest:
                raise
            continue
        if attempt == REPLACED_RETRIES or _manifest_or_none(path) == manifest:
            return loaded
    raise AssertionError("unreachable")


def _manifest_or_none(path: Path) -> dict | None:
    try:
        return _read_manifest(path)
    except (PixloomError, OSError):
        return None


def _load_files(
    path: Path, manifest: dict, training_state: bool, verify: bool, weights: bool
) -> Checkpoint:
    """The files of one checkpoint version, checked against its manifest."""
    config_path = _verify_file(path, manifest, CONFIG_FILE, verify)
    config = _check_loaded_config(_read_json(config_path, CONFIG_FILE), config_path)
    weights_path = _verify_file(path, manifest, WEIGHTS_FILE, verify)
    tensors = _read_weights(weights_path) if weights else {}
    state = None
    if training_state:
        if STATE_SKELETON_FILE not in manifest["files"]:
            raise CheckpointError(f"{path} has no training state (saved for inference only)")
        skeleton = _read_json(_verify_file(path, manifest, STATE_SKELETON_FILE, verify), "state")
        state_tensors = _read_weights(_verify_file(path, manifest, STATE_TENSORS_FILE, verify))
        state = unflatten_state(skeleton, state_tensors)
    sha256 = manifest["files"][WEIGHTS_FILE]["sha256"]
    return Checkpoint(path, config, tensors, state, manifest, sha256)


def is_complete(directory: str | Path, *, verify: bool = False) -> bool:
    """True when `directory` holds a checkpoint whose manifest and listed files all check out.

    Sizes are always compared; `verify=True` also recomputes every sha256.
    """
    path = Path(directory)
    try:
        manifest = _read_manifest(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE, *manifest["files"]):
            _verify_file(path, manifest, name, verify)
    except (PixloomError, OSError):
        return False
    return True


# ---------------------------------------------------------------------------- exporting

STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
DEFAULT_STORAGE_DTYPE = "float16"


DECODER_PARTS = ("decoder.", "text_encoder.")  # a tokenizer's decoding side (weights)
DECODER_FIELDS = ("text_encoder", "text_heads")  # ... and its config fields


def tokenizer_decoder(
    checkpoint: Checkpoint, tokenizer: str | Path
) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """The decoding side of the "vq" checkpoint `tokenizer` (its decoder and a
    text-conditioned decoder's prompt encoder) named as in `checkpoint`, the tokenizer
    config that goes with it, and the tokenizer's sha256.

    `checkpoint` is a model holding a tokenizer (config "tokenizer", weights "tokenizer.*",
    as token models do). The new tokenizer must have the same config but for its decoder's
    prompt (DECODER_FIELDS) and the same encoder and codebook, bit for bit, so that every
    image keeps its tokens (the vq task's decoder_only fine-tune gives exactly that).
    """
    new = load_checkpoint(tokenizer)
    held = checkpoint.model_config.get("tokenizer")
    if not held:
        raise InvalidValue("tokenizer", str(tokenizer),
                           f"no tokenizer option: {checkpoint.path} ({checkpoint.family}) "
                           "holds no tokenizer to change")  # fmt: skip

    def encoding_side(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in DECODER_FIELDS}

    if new.family != "vq" or encoding_side(new.model_config) != encoding_side(held):
        raise InvalidValue("tokenizer", str(tokenizer),
                           f"a 'vq' checkpoint with the config of the tokenizer in "
                           f"{checkpoint.path}: {held}")  # fmt: skip
    differing = [
        name
        for name, tensor in new.weights.items()
        if not name.startswith(DECODER_PARTS)
        and tensor.is_floating_point()
        and not torch.equal(tensor, checkpoint.weights.get(f"tokenizer.{name}", torch.empty(0)))
    ]
    if differing:
        raise InvalidValue("tokenizer", str(tokenizer),
                           f"the encoder and codebook of the tokenizer in {checkpoint.path}, "
                           f"bit for bit, so the codes keep their meaning ({len(differing)} "
                           f"tensors differ, e.g. {differing[0]})")  # fmt: skip
    decoder = {f"tokenizer.{n}": t for n, t in new.weights.items() if n.startswith(DECODER_PARTS)}
    return decoder, dict(new.model_config), new.sha256


def critic_weights(checkpoint: Checkpoint, critic: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:  # fmt: skip
    """The "critic" checkpoint `critic`'s weights named as inside `checkpoint` ("critic.*"),
    its model config and its sha256; `checkpoint` must be a text-to-image model (its best_of
    drafts are what a critic judges)."""
    if checkpoint.family not in TEXT_TO_IMAGE_FAMILIES:
        raise InvalidValue("critic", str(critic),
                           f"no critic option: {checkpoint.path} is a {checkpoint.family} model; "
                           f"a critic judges the drafts of {', '.join(TEXT_TO_IMAGE_FAMILIES)} models")  # fmt: skip
    new = load_checkpoint(critic)
    if new.family != "critic":
        raise InvalidValue("critic", str(critic),
                           f"a 'critic' checkpoint (pixloom train --task critic), not {new.family}")  # fmt: skip
    return {f"critic.{n}": t for n, t in new.weights.items()}, dict(new.model_config), new.sha256


def _averaged(
    checkpoint: Checkpoint, others: Sequence[str | Path]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The mean of `checkpoint`'s weights and those of `others`, and the others' sha256.

    Floating-point tensors are summed in float64 and cast back to their own dtype; any
    other tensor (an integer buffer) must be equal in every checkpoint.
    """
    sums = {n: t.double() if t.is_floating_point() else t for n, t in checkpoint.weights.items()}
    shas = []
    for other in others:
        loaded = load_checkpoint(other)
        if (loaded.family, loaded.model_config) != (checkpoint.family, checkpoint.model_config):
            raise InvalidValue(
                "average", str(other),
                f"a checkpoint of the source's model ({checkpoint.family} "
                f"{checkpoint.model_config}), not {loaded.family} {loaded.model_config}",
            )  # fmt: skip
        if set(loaded.weights) != set(sums):
            odd = sorted(set(loaded.weights) ^ set(sums))[:3]
            raise InvalidValue("average", str(other), f"the source's tensors (differs in {odd})")
        for name, tensor in loaded.weights.items():
            total = sums[name]
            if tensor.shape != total.shape:
                raise InvalidValue(
                    "average", str(other),
                    f"{name} of shape {tuple(total.shape)}, not {tuple(tensor.shape)}",
                )  # fmt: skip
            if total.is_floating_point():
                sums[name] = total + tensor.double()
            elif not torch.equal(total, tensor):
                raise InvalidValue("average", str(other), f"the source's value of {name}")
        shas.append(loaded.sha256)
    count = len(others) + 1
    weights = {
        name: (total / count).to(checkpoint.weights[name].dtype) if total.is_floating_point()
        else total
        for name, total in sums.items()
    }  # fmt: skip
    return weights, shas


def export_checkpoint(
    source: str | Path,
    target: str | Path,
    *,
    dtype: str = DEFAULT_STORAGE_DTYPE,
    tokenizer: str | Path | None = None,
    sampling: dict[str, Any] | None = None,
    average: Sequence[str | Path] = (),
    critic: str | Path | None = None,
) -> Path:
    """Copy a checkpoint for inference with its floating-point weights stored as `dtype`.

    The training state is left behind. Loading casts the weights back to the model's own
    dtype (fp32), so only storage shrinks: float16 halves the file and keeps 11 significant
    bits, finer than the bf16 that CPU and GPU inference run in. config.json records the
    storage dtype and the source's sha256 under "storage" (and, when the source is itself
    an export, the source's own record under "storage.source_storage"). `tokenizer` (a
    "vq" checkpoint, see tokenizer_decoder) replaces the decoder of the tokenizer a token
    model holds; its sha256 is recorded too. `critic` (a "critic" checkpoint) is put inside a
    text-to-image model, replacing any it held, to judge its best_of drafts (sha256 recorded as
    "critic_sha256"). `sampling` entries are added to config.json "sampling", the
    model's default request fields (checked by pipelines.text_to_image.sampling_defaults).
    `average` names further checkpoints of the same model (family, model config, tensor
    names and shapes) whose weights are averaged with the source's, each counted once:
    a checkpoint soup, usually of one run's last checkpoints. Their sha256 are recorded.
    """
    storage = STORAGE_DTYPES.get(dtype)
    if storage is None:
        raise InvalidValue("dtype", dtype, f"one of {', '.join(STORAGE_DTYPES)}")
    if Path(target).resolve() == Path(source).resolve():
        raise InvalidValue("target", str(target), "a path other than the source checkpoint's")
    checkpoint = load_checkpoint(source)
    record = {"dtype": dtype, "source_sha256": checkpoint.sha256}
    if checkpoint.config.get("storage"):  # an export of an export keeps the earlier lineage
        record["source_storage"] = checkpoint.config["storage"]
    if average:
        checkpoint.weights, record["averaged_sha256"] = _averaged(checkpoint, average)
    config = dict(checkpoint.config)
    if tokenizer is not None:
        decoder, tokenizer_config, record["tokenizer_sha256"] = tokenizer_decoder(
            checkpoint, tokenizer
        )
        checkpoint.weights = {
            n: t for n, t in checkpoint.weights.items()
            if not n.startswith(tuple(f"tokenizer.{part}" for part in DECODER_PARTS))
        } | decoder  # fmt: skip
        config["model"] = {**config["model"], "tokenizer": tokenizer_config}
    if critic is not None:
        judge, critic_config, record["critic_sha256"] = critic_weights(checkpoint, critic)
        kept = {n: t for n, t in checkpoint.weights.items() if not n.startswith("critic.")}
        checkpoint.weights = kept | judge
        config["model"] = {**config["model"], "critic": critic_config}
    weights = {}
    for name, tensor in checkpoint.weights.items():
        if tensor.is_floating_point():
            limit = torch.finfo(storage).max
            largest = float(tensor.abs().max()) if tensor.numel() else 0.0
            if largest > limit:
                raise InvalidValue(
                    f"weights[{name!r}]", f"max |value| {largest:.4g}",
                    f"values within {dtype}'s range ±{limit:.4g}; export as bfloat16 or float32",
                )  # fmt: skip
            tensor = tensor.to(storage)
        weights[name] = tensor
    config["storage"] = record
    if sampling:
        config["sampling"] = {**(config.get("sampling") or {}), **sampling}
    return save_checkpoint(target, config=config, weights=weights)
