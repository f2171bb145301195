"""Whole recordings through a model: streamed patching (`patching`) and tagging, feature
extraction and the batch runner (`tagging`)."""
