"""Find a preset's config and weights, download them from a Hugging Face Hub, verify them.

Resolution order for the weights of a preset:

1. the preset's own directory (written by `zoo.save_preset`), or for a built-in preset the
   ``weights/`` folder shipped with the package;
2. the Hugging Face cache (``HF_HUB_CACHE``; default ``~/.cache/huggingface/hub``);
3. a download with `huggingface_hub.hf_hub_download` from the preset's ``weights.hub`` location.

Every file is checked against the sha256 its config records before Keras reads it; a file from
the cache or the Hub that fails is deleted from the cache. Only plain ``*.weights.h5`` file names
are accepted: Keras reads arrays from them and never runs code from them. Downloads, the cache and
the settings (endpoint, timeout, offline mode, token) are in `zoo.hub.cache`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from zoo.errors import PresetError, WeightsError
from zoo.hub.cache import (
    COMMIT_RE,
    DEFAULT_TIMEOUT,
    ENDPOINT_ENV,
    HUB_SCHEME,
    TIMEOUT_ENV,
    HubOptions,
    check_repo_id,
    check_revision,
    download,
    file_sha256,
    is_offline,
    resolve_file,
)
from zoo.presets import PresetConfig, get_preset, shipped_dir

log = logging.getLogger(__name__)

__all__ = ["COMMIT_RE", "CONFIG_FILE", "DEFAULT_TIMEOUT", "ENDPOINT_ENV", "HUB_SCHEME",
           "TIMEOUT_ENV", "WEIGHTS_SUFFIX", "HubOptions", "check_weights_name", "download",
           "fetch", "file_sha256", "hub_config", "hub_location", "is_offline", "parse_hub_uri",
           "resolve_config", "resolve_weights", "verify_sha256"]

CONFIG_FILE = "config.json"
WEIGHTS_SUFFIX = ".weights.h5"


def verify_sha256(path: str | os.PathLike, expected: str | None, what: str) -> None:
    """Raise `WeightsError` unless the file's sha256 is ``expected`` (skipped if None)."""
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected.lower():
        raise WeightsError(
            f"{what}: {os.fspath(path)} has sha256 {actual}, expected {expected}; the file is "
            "corrupted or not the published one: refusing to load it"
        )


def check_weights_name(name: object, what: str) -> str:
    """``name`` if it is a plain ``*.weights.h5`` file name, else raise `WeightsError`.

    A config is data from a possibly untrusted source: a path (``../``, ``/``) could point
    anywhere, and any other format (pickle, ``.keras`` archives with Lambda layers) could carry
    code. Keras ``load_weights`` on a ``.weights.h5`` file reads arrays only.
    """
    ok = (isinstance(name, str) and len(name) > len(WEIGHTS_SUFFIX)
          and name.endswith(WEIGHTS_SUFFIX) and not name.startswith(".")
          and os.path.basename(name) == name and not any(c in name for c in "/\\\x00"))
    if not ok:
        raise WeightsError(
            f"{what}: refusing weights file {name!r}: only a plain file name ending in "
            f"{WEIGHTS_SUFFIX} is loaded (no paths; pickles and .keras archives can run code)")
    return name


# -- Hub locations ------------------------------------------------------------------------------


def parse_hub_uri(uri: str) -> tuple[str, str]:
    """``"hf://owner/repo@rev"`` -> ``("owner/repo", "rev")``; the revision defaults to main.

    Raises:
        PresetError: not a valid ``hf://`` address.

    Example:
        >>> parse_hub_uri("hf://me/tagger@0123456789abcdef0123456789abcdef01234567")[1][:4]
        '0123'
    """
    if not uri.startswith(HUB_SCHEME):
        raise PresetError(f"{uri!r} is not a Hub address (hf://owner/repo[@revision])")
    repo_id, _, revision = uri[len(HUB_SCHEME):].partition("@")
    revision = revision or "main"
    check_repo_id(repo_id, uri)
    check_revision(revision, uri)
    return repo_id, revision


def hub_location(config: PresetConfig) -> tuple[str, str, str]:
    """``(repo_id, filename, revision)`` of ``config.weights.hub``, validated.

    Raises:
        PresetError: no hub location, or a malformed one.
    """
    hub = config.weights.hub
    what = f"preset {config.name!r}"
    if not isinstance(hub, dict):
        raise PresetError(f"{what} has no Hub location (weights.hub)")
    repo_id, filename = hub.get("repo_id"), hub.get("filename") or config.weights.file
    revision = hub.get("revision") or "main"
    check_repo_id(repo_id, f"{what}: weights.hub")
    check_weights_name(filename, what)
    return repo_id, filename, check_revision(str(revision), what)


# -- presets ------------------------------------------------------------------------------------


def hub_config(uri: str, opts: HubOptions | None = None) -> PresetConfig:
    """The config of a preset published on a Hub (``hf://owner/repo[@revision]``).

    Its weights are pinned to the commit the config came from, so a branch that moves between
    the two downloads cannot pair a config with other weights.

    Raises:
        PresetError: bad address or config. WeightsError: cannot be downloaded.
    """
    opts = opts or HubOptions()
    repo_id, revision = parse_hub_uri(uri)
    path, commit = resolve_file(repo_id, CONFIG_FILE, revision, sha256=None, label=uri, opts=opts)
    config = PresetConfig.from_json_file(path)
    if config.weights.file is None:
        raise WeightsError(f"{uri}: its {CONFIG_FILE} names no weights file")
    check_weights_name(config.weights.file, uri)
    hub = {"repo_id": repo_id, "filename": config.weights.file, "revision": commit}
    return dataclasses.replace(config, weights=dataclasses.replace(config.weights, hub=hub))


def resolve_config(preset: str | os.PathLike | PresetConfig,
                   opts: HubOptions | None = None) -> PresetConfig:
    """The config of a built-in name, a preset directory, an ``hf://`` address or a config.

    Raises:
        PresetError: unknown name, missing directory, invalid config. WeightsError: an
            ``hf://`` config that cannot be downloaded.
    """
    if isinstance(preset, PresetConfig):
        return preset
    if isinstance(preset, str) and preset.startswith(HUB_SCHEME):
        return hub_config(preset, opts)
    path = Path(os.fspath(preset)).expanduser()
    if path.is_dir():
        config_file = path / CONFIG_FILE
        if not config_file.is_file():
            raise PresetError(f"{path} is not a preset directory: it has no {CONFIG_FILE}")
        return PresetConfig.from_json_file(config_file, root=str(path))
    if isinstance(preset, str) and ("/" in preset or os.sep in preset):
        raise PresetError(f"preset directory {preset!r} does not exist")
    return get_preset(str(preset))


def resolve_weights(config: PresetConfig, opts: HubOptions | None = None, *,
                    label: str | None = None) -> Path:
    """Path of a verified weights file for ``config`` (see the module doc for the order).

    Args:
        config: the preset.
        opts: how to reach the Hub, if the weights must be downloaded.
        label: what the user asked for (a name, directory or ``hf://`` address), for messages
            such as ``zoo fetch <label>``; default the preset's name.

    Raises:
        WeightsError: no weights are published for the preset, the file is missing (locally
            and on the Hub), unreachable, or its sha256 does not match.
    """
    ref = config.weights
    what = f"preset {config.name!r}"
    if ref.file is None:
        raise WeightsError(
            f"no pretrained weights are available for preset {config.name!r}: "
            f"{config.source.get('checkpoint', 'they were not published')}. If you have the "
            f"original TF1 checkpoint folder, pass it: zoo tag FILE --model {config.name} "
            f"--checkpoint DIR (Python: zoo.load({config.name!r}, checkpoint=DIR))"
        )
    check_weights_name(ref.file, what)
    local = (Path(config.root) if config.root else shipped_dir()) / ref.file
    if local.is_file():
        if ref.hub is None or config.root is not None or ref.sha256 is None:
            verify_sha256(local, ref.sha256, what)
            return local
        if file_sha256(local) == ref.sha256.lower():
            return local
        # A shipped file of that name whose bytes are not this preset's: the Hub has the right one.
        log.warning("%s: %s differs from the recorded sha256; using the Hub copy", what, local)
    elif ref.hub is None:
        raise WeightsError(f"weights of preset {config.name!r} not found at {local}")
    if ref.sha256 is None:
        raise WeightsError(f"{what}: its config records no sha256 for {ref.file}: refusing to "
                           "download weights that cannot be verified")
    repo_id, filename, revision = hub_location(config)
    return resolve_file(repo_id, filename, revision, sha256=ref.sha256,
                        label=label or config.name, opts=opts or HubOptions())[0]


def fetch(preset: str | os.PathLike | PresetConfig, *, endpoint: str | None = None,
          token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
          timeout: float | None = None) -> Path:
    """Make a preset loadable offline: download what is not shipped into the Hugging Face cache.

    Args:
        preset: a built-in name, a preset directory or ``hf://owner/repo[@revision]``.
        endpoint, token, cache_dir, timeout: see `HubOptions`.

    Returns:
        The verified weights file that `zoo.load` will use (a shipped file needs no download).

    Raises:
        PresetError, WeightsError: as `zoo.load`.

    Example:
        >>> zoo.hub.fetch("hf://me/tagger")   # then, offline: zoo.load("hf://me/tagger")
    """
    opts = HubOptions(endpoint, token, cache_dir, timeout)
    label = None if isinstance(preset, PresetConfig) else os.fspath(preset)
    return resolve_weights(resolve_config(preset, opts), opts, label=label)
