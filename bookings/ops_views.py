"""Staff maintenance endpoints: the ingestor's "1 init" and "2 truncate" over HTTP."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from airticket.auth import IsStaff
from airticket.throttles import CommandApi

from . import maintenance
from .serializers import InitResultSerializer, TruncateResultSerializer


class InitView(CommandApi):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={200: InitResultSerializer})
    def post(self, request):
        return Response({"steps": maintenance.system_init()})


class TruncateView(CommandApi):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={200: TruncateResultSerializer})
    def post(self, request):
        return Response({"deleted_items": maintenance.data_truncate()})
