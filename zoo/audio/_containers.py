"""Container-level checks: what a file is, what its header declares, whether it is cut short.

:func:`open_checked` identifies the container from its magic bytes (naming MP4/M4A and
Matroska, which libsndfile cannot read), opens it with soundfile, checks its rate and channel
count, and detects truncation that libsndfile 1.2 misses: a WAV ``data`` chunk larger than the
file, an Ogg stream ending inside a page or without an end-of-stream page, and whether an MP3
declares an exact length (Xing/Info/VBRI) so that a later shortfall is an error, not a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator

import soundfile as sf

from zoo.audio._checks import check_channels, check_rate
from zoo.audio._sources import Raw
from zoo.errors import AudioError, AudioWarning

# Header sniffing needs only the first bytes; the Ogg check needs the last page, which is at
# most 27 + 255 + 255 * 255 = 65_307 bytes long.
_HEAD_BYTES = 4_096
_OGG_TAIL_BYTES = 65_536 + 1_024
_WAV_MAX_CHUNKS = 64
# Containers libsndfile cannot read, named so the error can say what the file is.
_UNSUPPORTED_CONTAINERS = ("MP4/M4A (AAC/ALAC)", "Matroska/WebM")


def _sniff(head: bytes) -> str | None:
    """The container named by the magic bytes, for messages about files libsndfile rejects."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:4] in (b".snd", b"dns."):  # Sun/NeXT AU, big- or little-endian
        return "AU"
    if head[:4] == b"caff":
        return "CAF"
    if head[:4] == b"riff" and head[24:40].startswith(b"wave"):  # Sony Wave64 GUIDs
        return "W64"
    if head[4:8] == b"ftyp":
        return _UNSUPPORTED_CONTAINERS[0]
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _UNSUPPORTED_CONTAINERS[1]
    return None


def _wav_header(raw: Raw) -> dict[str, int]:
    """Channels, rate and data-chunk extent from a RIFF/WAVE header (walks chunk headers)."""
    out: dict[str, int] = {}
    if raw.read_at(0, 4) != b"RIFF":  # RIFX (big-endian) and RF64 headers are left to libsndfile
        return out
    pos = 12
    for _ in range(_WAV_MAX_CHUNKS):
        hdr = raw.read_at(pos, 8)
        if len(hdr) < 8:
            break
        cid, size = hdr[:4], int.from_bytes(hdr[4:], "little")
        if cid == b"fmt ":
            fmt = raw.read_at(pos + 8, 8)
            if len(fmt) == 8:
                out["channels"] = int.from_bytes(fmt[2:4], "little")
                out["rate"] = int.from_bytes(fmt[4:8], "little")
        elif cid == b"data":
            out["data_offset"], out["data_size"] = pos + 8, size
            break
        pos += 8 + size + (size & 1)  # RIFF chunks are padded to even sizes
    return out


def _ogg_tail_state(tail: bytes) -> str:
    """``"eos"``, ``"no_eos"`` (last page complete, no end-of-stream flag) or ``"partial"``."""
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        if pos + 27 <= len(tail) and tail[pos + 4] == 0:  # stream structure version 0
            nseg = tail[pos + 26]
            table = tail[pos + 27 : pos + 27 + nseg]
            if len(table) == nseg and pos + 27 + nseg + sum(table) == len(tail):
                return "eos" if tail[pos + 5] & 0x04 else "no_eos"
        pos = tail.rfind(b"OggS", 0, pos)
    return "partial"


def _mp3_has_length_header(raw: Raw) -> bool:
    """Whether an MP3 carries a Xing/Info/VBRI header, i.e. an exact frame count."""
    head = raw.read_at(0, 10)
    start = 0
    if head[:3] == b"ID3" and len(head) == 10:  # skip the ID3v2 tag (syncsafe size)
        start = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
    first = raw.read_at(start, 200)
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


@dataclasses.dataclass
class Meta:
    """What an opened source's header says (:func:`zoo.audio.stream` builds one for arrays too)."""

    name: str
    format: str
    subtype: str
    rate: int
    channels: int
    frames: int
    exact_frames: bool  # False when frames is only libsndfile's estimate (MP3 without header)


def _unsupported_container(kind: str) -> str:
    return f"unsupported audio container ({kind}); convert it to WAV, FLAC, OGG or MP3"


# What a file named like this should start with, for the message when it does not.
_EXPECTED_START = {".mp3": "no MP3 frame or ID3 tag", ".wav": "no RIFF/WAVE header",
                   ".wave": "no RIFF/WAVE header", ".flac": "no FLAC header",
                   ".ogg": "no Ogg page", ".oga": "no Ogg page", ".opus": "no Ogg page",
                   ".aif": "no AIFF header", ".aiff": "no AIFF header",
                   ".aifc": "no AIFF header", ".au": "no AU header", ".snd": "no AU header",
                   ".caf": "no CAF header", ".w64": "no Wave64 header"}
# libsndfile's words when it finds no decodable data, which mislead when quoted as they are.
_MISLEADING = "File does not exist or is not a regular file"


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable / len(head) > 0.95


def _unrecognised(name: str | None, head: bytes) -> str:
    suffix = os.path.splitext(name or "")[1].lower()
    missing = _EXPECTED_START.get(suffix, "no known audio header")
    text = ", the file looks like text" if _looks_like_text(head) else ""
    return f"not an audio file: format not recognised ({missing}{text})"


def open_failure(kind: str | None, err: Exception, name: str | None = None,
                 head: bytes = b"", raw: Raw | None = None) -> str:
    """The reason given when soundfile cannot open a file sniffed as ``kind``.

    For a file with no known audio header, libsndfile's own words (often "File does not exist
    or is not a regular file", which misleads) are replaced by what is missing; so are they
    for a known container with no decodable data (an MP3 cut inside its first frames). An Ogg
    file that libsndfile cannot open is checked for a cut page first (given ``raw``), because
    short Vorbis/Opus streams cut anywhere fail to open instead of decoding short.
    """
    why = getattr(err, "error_string", None) or str(err)
    if kind in _UNSUPPORTED_CONTAINERS:
        return _unsupported_container(kind)
    if kind is None:
        return _unrecognised(name, head)
    if kind == "OGG" and raw is not None:
        state = _ogg_tail_state(raw.read_at(max(0, raw.size - _OGG_TAIL_BYTES), raw.size))
        if state == "partial":
            return "truncated OGG: the file ends inside an Ogg page (it cannot be opened)"
        if state == "no_eos":
            return "truncated OGG: no end-of-stream page, and the stream cannot be opened"
    if _MISLEADING in why:
        return f"corrupt or truncated {kind} file: cannot be opened (no decodable audio data)"
    return f"corrupt or truncated {kind} file: cannot be opened (libsndfile: {why})"


@contextlib.contextmanager
def open_checked(raw: Raw) -> Iterator[tuple[sf.SoundFile, Meta]]:
    """Open with soundfile and run every header-level check; closes the file afterwards."""
    name = raw.name
    head = raw.read_at(0, _HEAD_BYTES)
    kind = _sniff(head)
    if kind in _UNSUPPORTED_CONTAINERS:
        raise AudioError(name, _unsupported_container(kind))
    wav = _wav_header(raw) if kind == "WAV" else {}
    # libsndfile reports these as "Channel count is zero." / "SF_INFO struct incomplete";
    # reading the header ourselves gives a clearer reason.
    if wav.get("channels") == 0:
        raise AudioError(name, "unsupported channel count 0 (WAV header says 0 channels)")
    if wav.get("rate") == 0:
        raise AudioError(name, "invalid sample rate 0 Hz in the WAV header")
    raw.rewind()
    try:
        f = sf.SoundFile(raw.target)
    except (sf.SoundFileError, RuntimeError, OSError, TypeError, ValueError) as err:
        raise AudioError(name, open_failure(kind, err, name, head, raw)) from err
    try:
        if f.format == "RAW":
            # No header zoo or libsndfile recognised, yet libsndfile guessed from the name
            # (.au/.snd: headerless 8 kHz u-law) and would decode any bytes as noise.
            raise AudioError(name, _unrecognised(name, head) + "; headerless raw data is not "
                             "decoded")
        check_rate(f.samplerate, name, "sample rate in the file header")
        check_channels(f.channels, name)
        exact = True
        if f.format in ("WAV", "WAVEX") and "data_size" in wav:
            declared, present = wav["data_size"], raw.size - wav["data_offset"]
            # 0 and 0xFFFFFFFF mean "length unknown" (streamed WAV writers), not truncation.
            if declared not in (0, 0xFFFFFFFF) and declared > present:
                raise AudioError(
                    name,
                    f"truncated WAV: the header declares {declared} bytes of samples but the "
                    f"file holds only {present} ({f.frames} complete frames)",
                )
        elif f.format == "OGG":
            state = _ogg_tail_state(raw.read_at(max(0, raw.size - _OGG_TAIL_BYTES), raw.size))
            if state == "partial":
                raise AudioError(name, "truncated OGG: the file ends inside an Ogg page")
            if state == "no_eos" and f.frames == 0:
                raise AudioError(
                    name, "truncated OGG: the stream ends after its headers (no end-of-stream page)"
                )
            if state == "no_eos":
                warnings.warn(
                    f"{name}: OGG stream has no end-of-stream page; it may be truncated",
                    AudioWarning,
                    stacklevel=4,
                )
        elif f.format == "MP3":
            exact = _mp3_has_length_header(raw)
        meta = Meta(name, f.format, f.subtype, f.samplerate, f.channels, f.frames, exact)
    except BaseException:
        f.close()
        raise
    with f:
        yield f, meta
