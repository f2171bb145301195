"""Make ``tests/data/bad/``: a corpus of broken, odd and hostile audio files, with what zoo must
do with each one.

Every case is a file plus an expectation, written to ``cases.json`` beside the files:

* ``load``: ``"error"`` (`zoo.audio.load` raises `zoo.AudioError` naming the file, whose reason
  contains ``reason``), ``"warn"`` (it loads, with a `zoo.errors.AudioWarning` containing
  ``reason``) or ``"ok"`` (it loads, no warning).
* ``tag_warning``: for files that load, a text the Taggram's warnings must contain (short,
  silent clips), or null.

``tests/audio/test_bad_corpus.py`` runs every case through `zoo.audio.load`, one ``zoo tag``
batch and one ``zoo index`` run, and checks the committed folder equals this script's output.
Cases that cannot be committed (a 2-hour file, a symbolic-link loop, an unreadable file) are
made by that test in a temporary folder.

The output is deterministic for given numpy / libsndfile versions: signals come from fixed
seeds and formulas, and the random serial numbers libsndfile gives Ogg streams are replaced by
a fixed one (page checksums recomputed). It was made with numpy 2.4, soundfile 0.14.0 and
libsndfile 1.2.2; the whole folder is about 300 KB.

Usage::

    python scripts/make_bad_corpus.py --out tests/data/bad
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SEED = 20240229
MANIFEST = "cases.json"
# The file name endings `zoo.search.build.AUDIO_EXTENSIONS` lists (kept literal here so the
# script runs without zoo installed; the test checks the two lists agree).
AUDIO_EXTENSIONS = (".aif", ".aifc", ".aiff", ".au", ".caf", ".flac", ".mp3", ".oga", ".ogg",
                    ".opus", ".snd", ".w64", ".wav", ".wave")
# A folder and file name with spaces and non-ASCII characters (Latin, dash, CJK).
ODD_FOLDER = "with spaces é"
ODD_NAME = "ñandú — café 音楽"

SHORT = "shorter than one"  # zoo.tag's warning for a clip tiled to fill one patch
SILENT = "silent (peak"


@dataclass(frozen=True)
class Case:
    """One corpus file and what zoo must do with it (see the module docstring)."""

    file: str
    what: str
    load: str
    reason: str | None = None
    tag_warning: str | None = None


# --------------------------------------------------------------------------------------------
# signals and encoders


def tone(sr: int, seconds: float, channels: int = 1, amp: float = 0.4) -> np.ndarray:
    """A chirp per channel (a different one each, so downmixes are not trivial), float32."""
    t = np.arange(int(round(sr * seconds))) / sr
    cols = [amp * np.sin(2 * np.pi * (220 * (c + 1) * t + 150 * t**2)) for c in range(channels)]
    x = np.stack(cols, axis=1).astype(np.float32)
    return x[:, 0] if channels == 1 else x


_CRC_TABLE = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else _r << 1
    _CRC_TABLE.append(_r & 0xFFFFFFFF)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


def fix_ogg_serial(data: bytes, serial: int = 0x5A4F4F21) -> bytes:
    """The Ogg stream with every page's serial number set to ``serial`` (CRCs recomputed):
    libsndfile picks a random serial per file, which would make the corpus differ per run."""
    out = bytearray(data)
    pos = 0
    while pos + 27 <= len(out) and out[pos:pos + 4] == b"OggS":
        nseg = out[pos + 26]
        end = pos + 27 + nseg + sum(out[pos + 27:pos + 27 + nseg])
        out[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        out[pos + 22:pos + 26] = _ogg_crc(bytes(out[pos:end])).to_bytes(4, "little")
        pos = end
    return bytes(out)


def encode(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    """The signal as a file of soundfile format ``fmt``, in memory (written in 1 s pieces:
    libsndfile's Vorbis encoder fails on very large single writes)."""
    channels = 1 if x.ndim == 1 else x.shape[1]
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", sr, channels, subtype=subtype, format=fmt) as f:
        for i in range(0, len(x), sr):
            f.write(x[i:i + sr])
    data = buf.getvalue()
    return fix_ogg_serial(data) if fmt == "OGG" else data


def wav_header(channels: int, rate: int, bits: int, data_bytes: int, fmt_tag: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header (for headers soundfile refuses to write)."""
    block = channels * bits // 8
    fmt = (fmt_tag.to_bytes(2, "little") + channels.to_bytes(2, "little")
           + rate.to_bytes(4, "little") + (rate * block).to_bytes(4, "little")
           + block.to_bytes(2, "little") + bits.to_bytes(2, "little"))
    # 0xFFFFFFFF in both sizes is how streaming writers say "length unknown".
    riff_size = 0xFFFFFFFF if data_bytes == 0xFFFFFFFF else 4 + 8 + len(fmt) + 8 + data_bytes
    return (b"RIFF" + riff_size.to_bytes(4, "little") + b"WAVE"
            + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
            + b"data" + data_bytes.to_bytes(4, "little"))


def float_wav(x: np.ndarray, sr: int) -> bytes:
    """A mono 32-bit float WAV, written by hand: libsndfile adds a PEAK chunk holding the
    time of writing to float WAVs, which would make the corpus differ per run."""
    data = np.asarray(x, "<f4").tobytes()
    return wav_header(1, sr, 32, len(data), fmt_tag=3) + data


def _ogg_pages(data: bytes) -> list[int]:
    """Start offsets of the Ogg pages of a well-formed stream."""
    pages, pos = [], 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        pages.append(pos)
        nseg = data[pos + 26]
        pos += 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
    return pages


# --------------------------------------------------------------------------------------------
# the cases


def _cases(rng: np.random.Generator) -> list[tuple[Case, bytes]]:
    items: list[tuple[Case, bytes]] = []

    def add(case: Case, data: bytes) -> None:
        items.append((case, data))

    # Nothing, or almost nothing.
    add(Case("empty.wav", "0-byte file", "error", "empty file (0 bytes)"), b"")
    add(Case("one_byte.flac", "a single byte", "error", "not an audio file"), b"\x66")
    add(Case("header_only.wav", "a WAV header promising 1 s, no samples", "error",
             "truncated WAV: the header declares 32000 bytes"), wav_header(1, 16000, 16, 32000))

    # Random bytes under every audio name zoo scans for.
    for ext in AUDIO_EXTENSIONS:
        junk = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
        # Keep the junk from starting like an MP3 frame sync by chance (0xFFE.): the case is
        # "no known header", which must hold for every extension.
        junk = b"\x00" + junk[1:]
        add(Case(f"random/random{ext}", f"2 KiB of random bytes named {ext}", "error",
                 "not an audio file: format not recognised"), junk)
    streaminfo = encode(tone(16000, 0.5), 16000, "FLAC", "PCM_16")[:42]
    add(Case("random/flac_header_then_random.flac",
             "a valid FLAC header (STREAMINFO) followed by random bytes", "error",
             "corrupt or truncated FLAC file"),
        streaminfo + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add(Case("random/text.wav", "a text file named .wav", "error",
             "not an audio file: format not recognised (no RIFF/WAVE header, the file looks "
             "like text)"), b"this is not a sound, only words\n" * 20)

    # Truncated at several points: inside the header, just after it, a quarter, a half, 90 %,
    # and one byte short of the end.
    # Reasons: (cut inside the header, cut later). Short Vorbis/Opus streams fail to open
    # wherever they are cut; an MP3 cut in its first frames has nothing to decode.
    ogg_cut = "truncated OGG: the file ends inside an Ogg page"
    sources = {
        "wav": (encode(tone(16000, 0.5), 16000, "WAV", "PCM_16"),
                ("corrupt or truncated WAV file", "truncated WAV: the header declares")),
        "flac": (encode(tone(16000, 1.0), 16000, "FLAC", "PCM_16"),
                 ("corrupt or truncated FLAC file: cannot be opened",
                  "truncated or corrupt FLAC data: decoding failed")),
        "ogg": (encode(tone(16000, 1.0), 16000, "OGG", "VORBIS"), (ogg_cut, ogg_cut)),
        "opus": (encode(tone(16000, 1.0), 16000, "OGG", "OPUS"), (ogg_cut, ogg_cut)),
        "mp3": (encode(tone(16000, 1.0), 16000, "MP3", "MPEG_LAYER_III"),
                ("corrupt or truncated MP3 file: cannot be opened (no decodable audio data)",
                 "truncated MP3: the header declares")),
    }
    early = {"wav": ("12b",), "flac": ("12b", "header"), "mp3": ("12b", "header", "25pct")}
    for ext, (data, (opening, later)) in sources.items():
        cuts = {"12b": 12, "header": 60, "25pct": len(data) // 4, "50pct": len(data) // 2,
                "90pct": len(data) * 9 // 10, "minus1": len(data) - 1}
        for label, keep in cuts.items():
            reason = opening if label in early.get(ext, ()) else later
            add(Case(f"truncated/{ext}_{label}.{ext}",
                     f"{ext} of {len(data)} bytes cut to its first {keep}", "error", reason),
                data[:keep])
    vorbis = encode(tone(16000, 8.0), 16000, "OGG", "VORBIS")
    pages = _ogg_pages(vorbis)
    add(Case("truncated/ogg_page_boundary.ogg",
             "Vorbis cut exactly before its last page: complete pages, no end-of-stream flag",
             "warn", "no end-of-stream page"), vorbis[:pages[-1]])
    add(Case("truncated/ogg_headers_only.ogg",
             "Vorbis cut after its header pages: complete pages, no audio, no end-of-stream",
             "error", "truncated OGG"), vorbis[:pages[2]])

    # Right content, wrong name.
    add(Case("wrong_ext/wav_named.mp3", "a WAV file named .mp3", "ok", None, SHORT),
        encode(tone(8000, 0.5), 8000, "WAV", "PCM_16"))
    add(Case("wrong_ext/ogg_named.wav", "an Ogg Vorbis file named .wav", "ok", None, SHORT),
        encode(tone(16000, 0.5), 16000, "OGG", "VORBIS"))
    add(Case("wrong_ext/flac_named.ogg", "a FLAC file named .ogg", "ok", None, SHORT),
        encode(tone(16000, 0.5), 16000, "FLAC", "PCM_16"))
    mp4 = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2\x00\x00\x00\x08free"
    add(Case("wrong_ext/m4a_named.mp3", "an MP4/M4A (AAC) header named .mp3", "error",
             "unsupported audio container (MP4/M4A"), mp4 + bytes(512))

    # Valid headers with no usable samples, or one.
    add(Case("length/zero_frames.wav", "a valid WAV with 0 frames", "error", "zero-length audio"),
        encode(np.zeros(0, np.float32), 16000, "WAV", "PCM_16"))
    add(Case("length/zero_frames.ogg", "a valid Ogg Vorbis stream with 0 frames", "error",
             "zero-length audio"), encode(np.zeros(0, np.float32), 16000, "OGG", "VORBIS"))
    add(Case("length/zero_frames.aiff", "a valid AIFF with 0 frames", "error",
             "zero-length audio"), encode(np.zeros(0, np.float32), 16000, "AIFF", "PCM_16"))
    add(Case("length/one_sample_16k.wav", "one sample at the model rate (16 kHz)", "ok", None,
             SHORT), encode(np.array([0.5], np.float32), 16000, "WAV", "PCM_16"))
    # One sample at 44.1 kHz is less than one sample at 16 kHz: resampling leaves nothing.
    add(Case("length/one_sample_44k.wav", "one sample at 44.1 kHz (resamples to none at 16 kHz)",
             "error", "too short to resample"),
        encode(np.array([0.5], np.float32), 44100, "WAV", "PCM_16"))

    # Odd but valid content.
    add(Case("content/silence.flac", "4 s of digital silence", "ok", None, SILENT),
        encode(np.zeros(64000, np.float32), 16000, "FLAC", "PCM_16"))
    add(Case("content/dc.flac", "4 s of constant DC at half scale", "ok"),
        encode(np.full(64000, 0.5, np.float32), 16000, "FLAC", "PCM_16"))
    clipped = np.clip(3.0 * tone(8000, 3.2, amp=1.0), -1.0, 1.0)
    add(Case("content/clipping.flac", "3.2 s of a chirp hard-clipped at full scale, 8 kHz", "ok"),
        encode(clipped, 8000, "FLAC", "PCM_16"))
    add(Case("content/over_full_scale.wav", "float WAV at 4x full scale (clipped on load)",
             "ok", None, SHORT), float_wav(4.0 * tone(16000, 0.25, amp=1.0), 16000))
    for label, value, at in (("nan", np.nan, 100), ("inf", np.inf, 0), ("neg_inf", -np.inf, 1599)):
        x = tone(16000, 0.1)
        x[at] = value
        add(Case(f"content/{label}.wav", f"float WAV with {value} at frame {at}", "error",
                 f"NaN or infinite samples (first at frame {at})"),
            float_wav(x, 16000))
    x = tone(8000, 0.25)
    x[10] = np.nan
    add(Case("content/nan.caf", "float CAF with NaN at frame 10", "error",
             "NaN or infinite samples (first at frame 10)"), encode(x, 8000, "CAF", "FLOAT"))

    # Formats at the edges of what zoo accepts.
    add(Case("format/8_channels.flac", "8 channels (7.1), 16 kHz FLAC", "ok", None, SHORT),
        encode(tone(16000, 0.5, channels=8, amp=0.1), 16000, "FLAC", "PCM_16"))
    add(Case("format/9_channels.wav", "9 channels: more than zoo accepts", "error",
             "unsupported channel count 9"),
        encode(tone(8000, 0.01, channels=9, amp=0.1), 8000, "WAV", "PCM_16"))
    add(Case("format/192k_24bit.wav", "192 kHz 24-bit PCM WAV", "ok", None, SHORT),
        encode(tone(192000, 0.1), 192000, "WAV", "PCM_24"))
    add(Case("format/8k_ulaw.wav", "8 kHz mu-law WAV (telephone), 3.5 s", "ok"),
        encode(tone(8000, 3.5), 8000, "WAV", "ULAW"))
    add(Case("format/rate_500hz.wav", "500 Hz sample rate: below what zoo accepts", "error",
             "unsupported sample rate in the file header: 500 Hz"),
        wav_header(1, 500, 16, 200) + bytes(200))
    add(Case("format/streamed_length.wav",
             "WAV whose data size is 0xFFFFFFFF (written by a streaming recorder)", "ok", None,
             SHORT), wav_header(1, 16000, 16, 0xFFFFFFFF)
        + (tone(16000, 0.25) * 32767).astype("<i2").tobytes())

    # Names with spaces and non-ASCII characters: one good file, one truncated.
    good = encode(tone(16000, 3.5), 16000, "FLAC", "PCM_16")
    add(Case(f"{ODD_FOLDER}/{ODD_NAME}.flac", "a good file under a name with spaces and non-ASCII",
             "ok"), good)
    add(Case(f"{ODD_FOLDER}/{ODD_NAME} (cut).flac", "a truncated FLAC under such a name",
             "error", "truncated or corrupt FLAC data"), good[:len(good) // 2])
    return items


def build(out: str | Path) -> list[Case]:
    """Write the corpus and its ``cases.json`` into ``out`` (emptied first); returns the cases.

    Raises:
        ValueError: ``out`` exists and is not a corpus folder (a guard against deleting
            anything else).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ValueError(f"{out} is not empty and holds no {MANIFEST}: refusing to replace it")
    if out.exists():
        shutil.rmtree(out)
    items = _cases(np.random.default_rng(SEED))
    for case, data in items:
        path = out / case.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    cases = [case for case, _ in items]
    (out / MANIFEST).write_text(json.dumps([asdict(c) for c in cases], indent=1,
                                           ensure_ascii=False) + "\n", encoding="utf-8")
    return cases


def main(argv: list[str] | None = None, report: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="tests/data/bad", help="the corpus folder")
    args = parser.parse_args(argv)
    cases = build(args.out)
    total = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    report(f"{len(cases)} cases, {total / 1024:.0f} KiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
