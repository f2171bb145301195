"""Errors a request can end in, each with its HTTP status; the app answers them as JSON
``{"error": message}``."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses, with the status to answer and a message for the client."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UploadTooLarge(RequestError):
    """The body is larger than `zoo.service.config.Limits.max_upload_bytes`."""

    status = 413


class AudioTooLong(RequestError):
    """The recording is longer than `zoo.service.config.Limits.max_audio_seconds`."""

    status = 413


class BadAudio(RequestError):
    """The upload is not audio zoo can use (the reason `zoo.AudioError` gives the CLI)."""

    status = 422


class DecodeTimeout(BadAudio):
    """Decoding took longer than `zoo.service.config.Limits.decode_timeout_seconds`."""


class UnsupportedMediaType(RequestError):
    """A raw body whose Content-Type says it is not audio."""

    status = 415


class Busy(RequestError):
    """Too many requests in flight (`zoo.service.config.Limits.max_pending`)."""

    status = 503


class NotReady(RequestError):
    """The models are still loading, or failed to load."""

    status = 503
