"""The Siamese similarity family: a shared encoder + projection head with unit-length output,
its metric-learning losses, a track-aware batch sampler and retrieval metrics.

- `model`: the ``siamese`` architecture (`build_siamese`, `L2Normalize`, `siamese_features`).
- `losses`: `TripletLoss` (batch-hard / semi-hard / batch-all) and `NTXentLoss`.
- `samplers`: `TrackBatchSampler` (P tracks x K excerpts, spaced in time).
- `retrieval`: same-track recall@k and style precision@k.
- `training`: stage 1, the head on cached frozen-encoder embeddings (imports on use).
"""

from zoo.models.siamese.losses import NTXentLoss, TripletLoss
from zoo.models.siamese.model import (
    PROJECTION,
    L2Normalize,
    build_projection_head,
    build_siamese,
    siamese_features,
)
from zoo.models.siamese.retrieval import retrieval_metrics
from zoo.models.siamese.samplers import TrackBatchSampler

__all__ = ["PROJECTION", "L2Normalize", "NTXentLoss", "TrackBatchSampler", "TripletLoss",
           "build_projection_head", "build_siamese", "retrieval_metrics", "siamese_features"]
