"""The Siamese similarity family: a shared encoder + projection head with unit-length output,
its metric-learning losses, a track-aware batch sampler and retrieval metrics.

- `model`: the ``siamese`` architecture (`build_siamese`, `L2Normalize`, `siamese_features`).
- `losses`: `TripletLoss` (batch-hard / semi-hard / batch-all) and `NTXentLoss`.
- `samplers`: `TrackBatchSampler` (P tracks x K excerpts, spaced in time).
- `retrieval`: same-track recall@k and style precision@k.
- `whitening`: a head fitted without labels (`fit_whitening`, `set_whitening_head`).
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
from zoo.models.siamese.whitening import Whitening, fit_whitening, set_whitening_head

__all__ = ["PROJECTION", "L2Normalize", "NTXentLoss", "TrackBatchSampler", "TripletLoss",
           "Whitening", "build_projection_head", "build_siamese", "fit_whitening",
           "retrieval_metrics", "set_whitening_head", "siamese_features"]
