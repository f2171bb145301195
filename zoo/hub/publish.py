"""Publish a preset to a Hugging Face Hub (or a private mirror) as one pinned commit.

The repo gets ``config.json``, the weights, a generated ``README.md`` model card and the
licence file the weights came with. `zoo.load("hf://owner/repo@<commit>")` then loads exactly
that commit; `push_to_hub(..., update_config=...)` records it in a preset JSON.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from zoo.errors import PresetError, WeightsError
from zoo.hub import (
    COMMIT_RE,
    CONFIG_FILE,
    HUB_SCHEME,
    HubOptions,
    check_weights_name,
    file_sha256,
    resolve_config,
)
from zoo.hub.cards import model_card
from zoo.hub.saving import CARD_FILE, license_path
from zoo.presets import PresetConfig, shipped_dir


@dataclasses.dataclass(frozen=True)
class Published:
    """Where a push put the preset.

    Attributes:
        repo_id: ``owner/repo``.
        revision: the 40-hex commit of the push.
        filename: the weights file in the repo.
        sha256: its digest.
        commit_url: the commit's page.
    """

    repo_id: str
    revision: str
    filename: str
    sha256: str
    commit_url: str = ""

    @property
    def uri(self) -> str:
        """``hf://owner/repo@<commit>``, for `zoo.load`."""
        return f"{HUB_SCHEME}{self.repo_id}@{self.revision}"

    @property
    def hub(self) -> dict[str, str]:
        """The value of ``weights.hub`` in a preset JSON."""
        return {"repo_id": self.repo_id, "filename": self.filename, "revision": self.revision}


def _publishable(preset: str | os.PathLike) -> tuple[PresetConfig, Path]:
    """The config of a preset directory or built-in name, and its verified weights file."""
    if isinstance(preset, str) and preset.startswith(HUB_SCHEME):
        raise PresetError("push a preset directory or a built-in name, not an hf:// address")
    config = resolve_config(preset)
    what = f"preset {config.name!r}"
    if config.weights.file is None or config.weights.sha256 is None:
        raise WeightsError(f"{what} has no weights file with a sha256 to publish")
    folder = Path(config.root) if config.root else shipped_dir()
    weights = folder / check_weights_name(config.weights.file, what)
    if not weights.is_file():
        raise WeightsError(f"{what}: {weights} not found")
    if file_sha256(weights) != config.weights.sha256.lower():
        raise WeightsError(f"{what}: {weights} does not match the sha256 of its config; "
                           "refusing to publish it")
    return config, weights


def push_to_hub(
    preset: str | os.PathLike,
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    private: bool = False,
    branch: str | None = None,
    commit_message: str | None = None,
    update_config: str | os.PathLike | None = None,
) -> Published:
    """Publish a preset directory (from `zoo.save_preset`) or a built-in preset in one commit.

    Args:
        preset: a preset directory or a built-in preset name.
        repo_id: ``owner/repo``; created if missing.
        endpoint: Hub URL (a private mirror); default ``ZOO_HUB_ENDPOINT``, ``HF_ENDPOINT``, then
            https://huggingface.co.
        token: a write token; default ``HF_TOKEN`` or the one saved by ``hf auth login``.
        private: create the repo private (an existing repo keeps its visibility).
        branch: commit to this branch (created from main if missing) instead of main.
        commit_message: default "Upload zoo preset <name>".
        update_config: a preset JSON (e.g. ``weights/<preset>.json``) whose ``weights.hub`` is
            set to the pushed commit; its sha256 must be that of the pushed weights.

    Returns:
        The `Published` location (``.revision`` is the commit hash; ``.uri`` loads it).

    Raises:
        PresetError, WeightsError: the preset is not publishable (no weights, sha256 mismatch),
            or ``update_config`` describes other weights.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused (authentication, permissions).

    Example:
        >>> pub = push_to_hub("my_tagger", "me/my-tagger")
        >>> zoo.load(pub.uri)  # "hf://me/my-tagger@<commit>"
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    config, weights = _publishable(preset)
    # The repo's config.json names no Hub location: where it was loaded from is recorded at load.
    published = dataclasses.replace(
        config, weights=dataclasses.replace(config.weights, hub=None), root=None)
    card = model_card(published, load_as=f"{HUB_SCHEME}{repo_id}")
    operations = [
        CommitOperationAdd(CONFIG_FILE, published.to_json().encode("utf-8")),
        CommitOperationAdd(weights.name, str(weights)),
        CommitOperationAdd(CARD_FILE, card.encode("utf-8")),
    ]
    if (licence := license_path(config)) is not None:
        operations.append(CommitOperationAdd(licence.name, str(licence)))

    api = HfApi(endpoint=HubOptions(endpoint=endpoint).resolved_endpoint(), token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if branch:
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    # create_commit, not upload_folder: it sends exactly these files (no stray files of the
    # directory) and with hf_xet installed upload_folder switches to a multi-commit pipeline.
    info = api.create_commit(repo_id, operations, revision=branch,
                             commit_message=commit_message or f"Upload zoo preset {config.name}")
    if not COMMIT_RE.fullmatch(info.oid or ""):
        raise WeightsError(f"the Hub answered the push of {repo_id} without a commit hash")
    result = Published(repo_id, info.oid, weights.name, config.weights.sha256.lower(),
                       info.commit_url or "")
    if update_config is not None:
        write_hub_location(update_config, result)
    return result


def write_hub_location(config_path: str | os.PathLike, published: Published) -> PresetConfig:
    """Record a pushed commit as ``weights.hub`` of a preset JSON.

    Raises:
        PresetError: the JSON's weights (sha256) are not the published ones.
    """
    path = Path(config_path)
    config = PresetConfig.from_json_file(path)
    if (config.weights.sha256 or "").lower() != published.sha256:
        raise PresetError(f"{path}: its weights (sha256 {config.weights.sha256}) are not the "
                          f"published ones ({published.sha256}); not recording the Hub location")
    updated = dataclasses.replace(
        config, weights=dataclasses.replace(config.weights, hub=published.hub))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(updated.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return updated
