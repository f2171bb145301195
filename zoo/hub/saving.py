"""`zoo.save_preset`: write a (fine-tuned) model as a preset directory that `zoo.load` reads.

A preset directory holds ``config.json`` (architecture, preprocessing, tags, licence, metrics and
the sha256 of the weights), ``model.weights.h5`` (the log-mel backbone; the front-end is rebuilt
from the config, which also keeps the values of a trainable compression such as LogLearn or
PCEN), ``README.md`` (a model card) and, when the weights derive from a licensed source, its
licence file. scripts/push_to_hub.py publishes it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.hub import CONFIG_FILE, check_weights_name, file_sha256
from zoo.hub.cards import model_card
from zoo.presets import PresetConfig, WeightsRef, shipped_dir

WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"


def _write_atomic(path: Path, write) -> None:
    """Write through a temporary name, so an interrupted save never leaves a half file under
    the final name."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def license_path(config: PresetConfig) -> Path | None:
    """The licence text the weights came with (the ISC notice of musicnn must travel with
    copies of its weights), if the config names one that exists."""
    name = config.source.get("license_file")
    if not isinstance(name, str) or os.path.basename(name) != name or name.startswith("."):
        return None
    path = (Path(config.root) if config.root else shipped_dir()) / name
    return path if path.is_file() else None


def _trained_preprocessing(model: Any, config: PresetConfig):
    """The preprocessing with the current values of a trainable compression layer (LogLearn,
    PCEN) of the waveform model: they are not in the backbone's weights file."""
    from zoo.models.pipeline import compression_weights

    try:
        layer = model.get_layer("compression")
    except (AttributeError, ValueError):
        return config.preprocessing
    values = compression_weights(layer)
    if not values:
        return config.preprocessing
    return dataclasses.replace(config.preprocessing, compression_weights=values)


def save_preset(
    model: Any,
    directory: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    metrics: dict[str, Any] | None = None,
    license: str | None = None,  # noqa: A002 - the config field's name
    source: dict[str, Any] | None = None,
) -> Path:
    """Save a model from `zoo.load` (fine-tuned or not) as a preset directory.

    ``zoo.load(directory)`` rebuilds the same model (identical outputs), with the preprocessing
    the weights expect. Existing files of the same names are replaced.

    Args:
        model: a model returned by `zoo.load` (it carries ``zoo_preset`` and ``zoo_backbone``;
            train it, or its ``zoo_backbone``, in place before saving).
        directory: where to write (created if needed).
        name: the preset's name (default: the loaded preset's).
        description: one line (default: the loaded preset's).
        tags: output tag names, one per unit of the tag layer (default: unchanged).
        metrics: reported metrics, e.g. ``{"roc_auc": 0.91, "evaluated_on": "..."}``. Default:
            the loaded preset's if ``name`` is unchanged, else none (new weights, new scores).
        license: licence of the new weights (default: the loaded preset's; weights derived from
            licensed ones usually keep its terms).
        source: provenance (``paper``, ``dataset``, ``url``...). Default: the loaded preset's,
            plus ``base_preset`` when ``name`` changes.

    Returns:
        The directory.

    Raises:
        TypeError: ``model`` does not come from `zoo.load`.
        ValueError: ``tags`` does not match the number of tag outputs.

    Example:
        >>> model = zoo.load("musicnn_mtt")
        >>> # ... fine-tune model.zoo_backbone on your data ...
        >>> zoo.save_preset(model, "my_tagger", name="my_tagger", metrics={"roc_auc": 0.92})
        >>> zoo.load("my_tagger")
    """
    config: PresetConfig | None = getattr(model, "zoo_preset", None)
    backbone = getattr(model, "zoo_backbone", None)
    if config is None or backbone is None:
        raise TypeError("save_preset needs a model from zoo.load(): it carries the preset "
                        "(zoo_preset) and the weights' backbone (zoo_backbone)")
    new_tags = tuple(tags) if tags is not None else config.tags
    n_outputs = backbone.output.shape[-1]
    if len(new_tags) != n_outputs:
        raise ValueError(f"{len(new_tags)} tag names for a tag layer of {n_outputs} outputs")
    renamed = bool(name) and name != config.name
    if source is None:
        source = dict(config.source)
        if renamed:
            source["base_preset"] = config.name
    if metrics is None:
        metrics = {} if renamed else config.metrics
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)

    weights = folder / check_weights_name(WEIGHTS_FILE, "save_preset")
    # Keras picks the format from the name: a temporary name must keep the .weights.h5 ending.
    tmp = folder / f"tmp-{os.getpid()}-{WEIGHTS_FILE}"
    try:
        backbone.save_weights(tmp)
        os.replace(tmp, weights)
    finally:
        tmp.unlink(missing_ok=True)
    licence_src = license_path(config)
    if licence_src is not None and licence_src.resolve() != (folder / licence_src.name).resolve():
        shutil.copyfile(licence_src, folder / licence_src.name)

    saved = dataclasses.replace(
        config,
        preprocessing=_trained_preprocessing(model, config),
        name=name or config.name,
        description=description or config.description,
        tags=new_tags,
        weights=WeightsRef(file=WEIGHTS_FILE, sha256=file_sha256(weights), hub=None),
        license=config.license if license is None else license,
        source=dict(source),
        metrics=dict(metrics),
        root=str(folder),
    )
    card = model_card(saved, load_as=str(folder))
    _write_atomic(folder / CARD_FILE, lambda p: p.write_text(card, encoding="utf-8"))
    # The config goes last: until it exists the directory is not a loadable preset.
    _write_atomic(folder / CONFIG_FILE, lambda p: p.write_text(saved.to_json(), encoding="utf-8"))
    return folder
