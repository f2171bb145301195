"""Model cards generated from a preset's config, the single source of truth.

`model_card` writes the Markdown of ``docs/models/<preset>.md`` (built-in presets) and of the
``README.md`` that `zoo.save_preset` puts in a preset directory and that a Hub repo displays.
"""

from __future__ import annotations

from zoo.presets import PresetConfig

DESCRIPTORS_NOTE = (
    "The projection is then joined with weightless descriptors of the same log-mel patch "
    "(`zoo.layers.MelChroma`: the mean pitch-class profile; `zoo.layers.OnsetAutocorrelation`: "
    "the periodicity of its onsets), each centred and made unit length, scaled by the square "
    "root of its weight (`descriptors` below) and concatenated: the output "
    "(`similarity_embedding`) is a unit vector whose cosine is the weighted sum of the parts' "
    "cosines (`zoo.models.siamese.descriptors`)."
)

ARCHITECTURE_NOTES = {
    "musicnn": (
        "musicnn (Pons & Serra, 2019): a musically motivated front-end (timbral filters spanning "
        "38 and 67 of the 96 mel bands, temporal filters of 128/64/32 frames, each max-pooled over "
        "frequency), a 1-D conv mid-end with dense and residual connections, and max+mean "
        "temporal pooling into a dense embedding (`penultimate`) and the tag layer."
    ),
    "vgg": (
        "The VGG-like baseline published with musicnn: five 3x3 conv blocks of 128 filters "
        "(conv -> ReLU -> BatchNorm -> max-pool), flattened to 256 and one dense tag layer."
    ),
    "siamese": (
        "One branch of a Siamese network: an encoder (a zoo backbone up to one of its feature "
        "taps) and a projection head (dense layers, the last linear) ending in an L2 "
        "normalisation, so the output (`projection`) is a unit vector per patch and the dot "
        "product of two outputs is their cosine similarity. The head is trained with a "
        "metric-learning loss on batches of P tracks x K excerpts (`zoo.models.siamese`), or, "
        "with `normalize_feature`, may be a linear map fitted without labels on unit-normalised "
        "features (PCA whitening, `zoo.models.siamese.whitening`): the card's Training line "
        "says which. No tags."
    ),
    "samplecnn": (
        "sampleCNN (Lee, Park, Kim & Nam, 2017), on the raw waveform: a strided conv of 3 "
        "samples, then blocks of conv(3) -> BatchNorm -> ReLU -> max-pool(3) down to one frame, "
        "a 1x1 conv (a dense layer on that frame: the `embedding`), dropout and the sigmoid tag "
        "layer. The patch is 3^(depth+1) samples (59,049 for the paper's 3^9 model)."
    ),
}

DIFFERENCES = """\
## Differences from the original code

- Per-patch features are correct for every patch. The original extractor, when a file has more
  patches than its batch size (1), returns patch 0's `cnn1`-`cnn3` and `penultimate` for every
  later patch.
- Audio shorter than one patch (about 3 s) is tiled to fill a patch (the models were trained
  with repeat-padding); the original crashes. `Taggram.repeat_padded` tells you it happened.
- By default the end of a file that the regular 3 s patches leave out (1 s or more) gets one more
  patch aligned with the end of the file; `tail="drop"` (CLI `--tail drop`) reproduces the
  original, which ignores it.
- The mel power is quantised to float16 before `log10(10000·x + 1)`, as in the original (the
  weights saw that), but the log runs in float32 and the input is clamped below 65504, so loud
  audio never overflows to inf/NaN (the original does under numpy 2).
"""

# Licence identifiers the Hub's model-card metadata accepts as they are; others become "other".
_HUB_LICENSES = {
    "apache-2.0", "mit", "isc", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0",
    "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "gpl-3.0", "lgpl-3.0", "mpl-2.0",
    "openrail", "unlicense",
}


def _front_matter(config: PresetConfig) -> list[str]:
    """YAML metadata the Hub reads from a README (licence, library, search tags), written by
    `huggingface_hub.ModelCardData`."""
    from huggingface_hub import ModelCardData

    license_id = config.license.strip().lower()
    extra = {}
    if license_id in _HUB_LICENSES:
        license_field = license_id
    elif license_id:
        license_field, extra = "other", {"license_name": config.license}
    else:
        license_field = None
    task = ("music-tagging" if config.architecture in ("musicnn", "vgg", "samplecnn")
            else "classification")
    pipeline = "audio-classification"
    if not config.tags:  # an embedding model (siamese)
        task, pipeline = "similarity", "feature-extraction"
    data = ModelCardData(license=license_field, library_name="zoo", pipeline_tag=pipeline,
                         tags=["audio", task, "keras", config.architecture], **extra)
    return ["---", *data.to_yaml().splitlines(), "---", ""]


def _source_lines(config: PresetConfig, builtin: bool) -> list[str]:
    src = config.source
    prefix = "weights/" if builtin else ""
    lines = []
    if "checkpoint" in src or "url" in src:
        origin = src.get("checkpoint", "n/a") + (f" ({src['url']})" if src.get("url") else "")
        if src.get("converter"):
            origin += f", converted by `{src['converter']}`"
        lines.append(f"- Weights: {origin}.")
    if src.get("base_preset"):
        lines.append(f"- Fine-tuned from the zoo preset `{src['base_preset']}`.")
    if src.get("encoder_preset"):
        lines.append(f"- Encoder: the zoo preset `{src['encoder_preset']}`"
                     + (f" ({src['encoder']})" if src.get("encoder") else "") + ".")
    if src.get("training"):
        lines.append(f"- Training: {src['training']}.")
    for key, label in (("paper", "Paper"), ("dataset", "Training data")):
        if src.get(key):
            lines.append(f"- {label}: {src[key]}.")
    licence = f"- Licence: {config.license or 'not stated'}"
    if src.get("copyright"):
        licence += f", copyright {src['copyright']}"
    if src.get("license_file"):
        licence += f" (`{prefix}{src['license_file']}`)"
    lines.append(licence + ".")
    if src.get("license_notes"):
        lines.append(f"- Licence notes: {src['license_notes']}")
    weights = config.weights
    if weights.file:
        lines.append(f"- File: `{prefix}{weights.file}`, sha256 `{weights.sha256}`.")
    else:
        lines.append("- Weights: not published. With the original TF1 checkpoint folder, "
                     f"`zoo.load(\"{config.name}\", checkpoint=\"/path/to/dir/\")` converts it.")
    if weights.hub:
        hub = weights.hub
        lines.append(f"- Hub: `{hub.get('repo_id')}`, file `{hub.get('filename')}`, "
                     f"revision `{hub.get('revision')}`.")
    return lines


def _metrics_lines(config: PresetConfig, builtin: bool) -> list[str]:
    metrics = dict(config.metrics)
    if not metrics:
        return ["None published."]
    where = metrics.pop("evaluated_on", "")
    if builtin and {"roc_auc", "pr_auc"} <= set(metrics):
        return [f"ROC-AUC {metrics['roc_auc']}, PR-AUC {metrics['pr_auc']} ({where}). Not "
                "re-measured here: the datasets cannot be obtained on this project's machines."]
    values = ", ".join(f"{k} {v}" for k, v in metrics.items())
    who = ("measured by `zoo finetune` (details in its metrics.json)"
           if config.source.get("base_preset") or config.architecture in ("classifier", "melcnn")
           else "as reported by the publisher")
    if config.source.get("evaluated_by") or config.source.get("trained_by"):
        who = f"measured by `{config.source.get('evaluated_by') or config.source['trained_by']}`"
    return [f"{values}" + (f" ({where})" if where else "") + f", {who}."]


def _usage_lines(config: PresetConfig, target: str) -> list[str]:
    patch = config.preprocessing.patch_samples
    if config.tags:
        return [f'taggram = zoo.tag("song.mp3", model="{target}")',
                f'model = zoo.load("{target}")  # waveform (batch, {patch}) -> tags']
    # An embedding model: no tags, its output is the embedding.
    from zoo.models.registry import get_architecture

    embedding = get_architecture(config.architecture).taps(config.architecture_config)[1]
    return [f'features = zoo.extract("song.mp3", model="{target}")',
            f'vectors = features["{embedding}"]  # one per patch',
            f'model = zoo.load("{target}")  # waveform (batch, {patch}) -> {embedding}']


def model_card(config: PresetConfig, *, load_as: str | None = None, builtin: bool = False) -> str:
    """The Markdown model card of a preset.

    Args:
        config: the preset.
        load_as: what to pass to `zoo.load` in the usage example (default: the preset's name;
            e.g. ``"hf://owner/repo"`` for a published preset).
        builtin: a shipped preset (``docs/models/``): files are under ``weights/`` and the
            card explains how zoo differs from the original musicnn code. Otherwise the card
            starts with the YAML metadata a Hub repo reads (licence, library, tags).

    Returns:
        The card, ending with a newline.

    Example:
        >>> text = model_card(zoo.get_preset("musicnn_msd"), builtin=True)
        >>> text.splitlines()[0]
        '# `musicnn_msd`'
    """
    target = load_as or config.name
    lines = [] if builtin else _front_matter(config)
    lines += [
        f"# `{config.name}`",
        "",
        config.description.rstrip(".") + ".",
        "",
        "```python",
        "import zoo",
        *_usage_lines(config, target),
        "```",
        "",
        "## Source and licence",
        "",
        *_source_lines(config, builtin),
        "",
        "## Architecture",
        "",
    ]
    if note := ARCHITECTURE_NOTES.get(config.architecture):
        lines += [note, ""]
        if config.architecture_config.get("descriptors"):
            lines += [DESCRIPTORS_NOTE, ""]
    else:
        lines += [f"`{config.architecture}`.", ""]
    if config.architecture_config:
        args = ", ".join(f"{k}={v}" for k, v in config.architecture_config.items())
        lines += [f"Arguments: `{args}`.", ""]
    lines += _preprocessing_lines(config)
    lines += [
        "## Reported metrics",
        "",
        *_metrics_lines(config, builtin),
        "",
        "## Tags",
        "",
        (", ".join(f"`{t}`" for t in config.tags) if config.tags else
         "None: an embedding model (`zoo.tag` refuses it; use `zoo.extract` or `zoo.load`)."),
        "",
    ]
    if notes := config.source.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    if builtin and config.architecture in ("musicnn", "vgg"):
        lines.append(DIFFERENCES)
    text = "\n".join(lines)
    return text if text.endswith("\n") else text + "\n"


def _preprocessing_lines(config: PresetConfig) -> list[str]:
    prep = config.preprocessing
    if prep.frontend == "waveform":
        return [
            "## Preprocessing",
            "",
            f"- {prep.sample_rate} Hz mono, raw waveform: no front-end layer, the model takes "
            "the samples themselves.",
            f"- Patches of {prep.patch_samples} samples ({prep.patch_seconds:.3f} s); whole "
            "files are cut without padding (`zoo.tag` starts one every `hop_seconds`, 3 s by "
            "default), and audio shorter than one patch is tiled to fill it.",
            "",
        ]
    fmax = "sr/2" if prep.fmax is None else f"{prep.fmax:g}"
    return [
        "## Preprocessing (inside the model)",
        "",
        f"- {prep.sample_rate} Hz mono; STFT n_fft {prep.n_fft}, hop {prep.hop_length}, periodic "
        f"{prep.window} window, power {prep.power:g}.",
        f"- {prep.n_mels} mel bands, {prep.fmin:g}-{fmax} Hz, "
        f"{'HTK' if prep.htk else 'Slaney'} scale, norm={prep.norm}.",
        f"- Compression: `{prep.compression}` {prep.compression_config}.",
        f"- Patches of {prep.patch_frames} frames ({prep.patch_seconds:.3f} s = "
        f"{prep.patch_samples} samples); whole files are padded by {prep.edge_padding} samples "
        f"({prep.pad_mode}) like the original's centred STFT.",
        "",
    ]
