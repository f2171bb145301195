"""sampleCNN: raw-waveform tagger with 3-sample filters (Lee et al., 2017)."""

from zoo.models.samplecnn.samplecnn import (
    EMBEDDING_UNITS,
    PAPER_FILTERS,
    SAMPLECNN_FEATURES,
    STEM_FILTERS,
    build_samplecnn,
    default_filters,
    input_samples,
    samplecnn_features,
    samplecnn_param_count,
    samplecnn_taps,
)

__all__ = ["EMBEDDING_UNITS", "PAPER_FILTERS", "SAMPLECNN_FEATURES", "STEM_FILTERS",
           "build_samplecnn", "default_filters", "input_samples", "samplecnn_features",
           "samplecnn_param_count", "samplecnn_taps"]

from zoo.models.registry import Architecture, register  # noqa: E402 - after the family's names

# Raw waveform in (preprocessing.frontend "waveform"); the taps depend on the depth.
register("samplecnn", Architecture(build_samplecnn, SAMPLECNN_FEATURES, "embedding",
                                   resolve=samplecnn_taps))
