"""Request parsers: JSON only, and every unreadable body is a 400, never a 500."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser turns ValueError into a 400 but lets RecursionError through: a body
    nested deeper than the interpreter's recursion limit (`[[[[...]]]]`) became a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
