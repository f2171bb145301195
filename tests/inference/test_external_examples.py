"""External check: the tags the musicnn README publishes for the authors' two example clips.

The clips live beside the repository in ../shared/musicnn-examples (not redistributable with this
project); the test is skipped where that folder is absent.
"""

import warnings
from pathlib import Path

import pytest

import zoo

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "musicnn-examples"
JORAM = "joram-moments_of_clarity-08-solipsism-59-88.mp3"
TRWJAZW = "TRWJAZW128F42760DD_test.mp3"
# Published with the original code and MTT_musicnn (musicnn README).
PUBLISHED = {
    JORAM: ["techno", "electronic", "synth", "fast", "beat", "drums", "no vocals", "no vocal",
            "dance", "ambient"],
    TRWJAZW: ["guitar", "piano", "fast"],
}

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} not present")


@pytest.mark.parametrize("clip", sorted(PUBLISHED))
def test_published_top_tags_are_reproduced(clip):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # these mp3s lack a length header: a length estimate
        taggram = zoo.tag(EXAMPLES / clip, model="musicnn_mtt", tail="drop")
    want = PUBLISHED[clip]
    got = [tag for tag, _ in taggram.top(len(want))]
    # 44.1 kHz mp3s: decoder and resampler may move a weak tag by a place; strong tags must not.
    assert got[:3] == want[:3]
    same_place = sum(a == b for a, b in zip(got, want, strict=True))
    assert set(got) == set(want) or same_place >= len(want) - 2
