"""Reading an uploaded recording from a request: a multipart ``file`` field or the raw body,
never more than the size limit, with a name fit for messages and the file ending to decode by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from zoo.search.build import AUDIO_EXTENSIONS
from zoo.service.errors import RequestError, UnsupportedMediaType, UploadTooLarge

FIELD = "file"
"""The multipart field that carries the recording."""

# Raw bodies: the Content-Types taken as audio, and the file ending each one implies.
_RAW_TYPES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
              "audio/vnd.wave": ".wav", "audio/flac": ".flac", "audio/x-flac": ".flac",
              "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/mpeg": ".mp3",
              "audio/mp3": ".mp3", "audio/aiff": ".aiff", "audio/x-aiff": ".aiff",
              "audio/basic": ".au", "application/ogg": ".ogg"}
_GENERIC_TYPES = {"", "application/octet-stream"}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_CHARS = 120
HOW_TO_SEND = (f"send the recording as the multipart field '{FIELD}' (multipart/form-data), or "
               "as the raw body with Content-Type audio/* or application/octet-stream")


@dataclass(frozen=True)
class Upload:
    """An uploaded recording: its bytes, its name for messages, its file ending (or "")."""

    data: bytes
    name: str
    suffix: str


def clean_name(filename: str | None) -> str:
    """The last part of a client's file name (either slash), printable, at most 120 chars."""
    if not filename:
        return ""
    name = PureWindowsPath(PurePosixPath(filename).name).name
    return _UNPRINTABLE.sub("", name)[-MAX_NAME_CHARS:]


def _suffix(name: str, content_type: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in AUDIO_EXTENSIONS:
        return suffix
    return _RAW_TYPES.get(content_type, "")  # "": the decoder tells the format by content


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused (413) as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UploadTooLarge(_too_large(int(declared), max_bytes))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:  # a chunked body, or a Content-Length that lied
            raise UploadTooLarge(_too_large(None, max_bytes))
    return bytes(body)


def _too_large(size: int | None, max_bytes: int) -> str:
    got = f"{size / 2 ** 20:.1f} MiB" if size is not None else "more than that"
    return f"the upload is too large ({got}); this server takes at most " \
           f"{max_bytes / 2 ** 20:g} MiB"


async def read_upload(request: Request, max_bytes: int, filename: str | None = None) -> Upload:
    """The recording a request carries.

    Args:
        request: a ``POST`` with a multipart ``file`` field or a raw audio body.
        max_bytes: the size limit of the whole body.
        filename: the name of a raw body (the ``filename`` query parameter), for messages
            and to tell its format.

    Raises:
        UploadTooLarge: over ``max_bytes``. UnsupportedMediaType: a raw body that says it is
            something else than audio. RequestError: no recording in the request (400).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, max_bytes)
    if content_type == "multipart/form-data":
        async def once():
            yield body

        try:
            form = await MultiPartParser(request.headers, once(), max_files=1,
                                         max_fields=16).parse()
        except MultiPartException as err:
            raise RequestError(f"cannot read the multipart body: {err.message}") from err
        part = form.get(FIELD)
        if not isinstance(part, UploadFile):
            raise RequestError(f"no file in the multipart field '{FIELD}': {HOW_TO_SEND}")
        data = await part.read()
        await part.close()
        name = clean_name(part.filename) or clean_name(filename)
        part_type = (part.content_type or "").split(";")[0].strip().lower()
        suffix = _suffix(name, part_type)
    elif content_type in _GENERIC_TYPES or content_type in _RAW_TYPES \
            or content_type.startswith("audio/"):
        if not body:
            raise RequestError(f"the request has no body: {HOW_TO_SEND}")
        data, name = body, clean_name(filename)
        suffix = _suffix(name, content_type)
    else:
        raise UnsupportedMediaType(f"Content-Type {content_type!r} is not audio: {HOW_TO_SEND}")
    return Upload(data, name or f"upload{suffix}", suffix)
