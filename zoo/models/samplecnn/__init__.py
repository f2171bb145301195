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
