"""Request parsers and content negotiation: JSON only, and every unreadable body or unknown
format is a clear 4xx, never a 500 or a bare 404."""

from rest_framework import parsers
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser turns ValueError into a 400 but lets RecursionError through: a body
    nested deeper than the interpreter's recursion limit (`[[[[...]]]]`) became a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class ContentNegotiation(DefaultContentNegotiation):
    """DRF answers an unknown `?format=` with a bare Http404 (an empty message); it is a 406
    naming what the API speaks."""

    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            offered = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise NotAcceptable(f"format {format!r} is not offered; use {offered}")
        return matching
