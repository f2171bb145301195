"""In-graph audio front-end layers (Keras 3, any backend; core TF ops on TensorFlow) and
numpy mel helpers."""

import zoo._quiet_tf  # noqa: F401 - first: TensorFlow without its start-up lines
from zoo.layers.augment import SpecAugment
from zoo.layers.compression import Log10Scaled, LogEps, LogLearn, PowerToDb
from zoo.layers.descriptors import MelChroma, OnsetAutocorrelation
from zoo.layers.filterbank import hz_to_mel, mel_filterbank, mel_frequencies, mel_to_hz
from zoo.layers.mel import MelSpectrogram
from zoo.layers.pcen import PCEN

__all__ = [
    "PCEN",
    "Log10Scaled",
    "LogEps",
    "LogLearn",
    "MelChroma",
    "MelSpectrogram",
    "OnsetAutocorrelation",
    "PowerToDb",
    "SpecAugment",
    "hz_to_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
]
