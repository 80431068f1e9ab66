"""Staff maintenance endpoints: the ingestor's "1 init" and "2 truncate" over HTTP."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from airticket.auth import IsStaff

from . import maintenance
from .serializers import InitResultSerializer, TruncateResultSerializer


class InitView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={200: InitResultSerializer})
    def post(self, request):
        return Response({"steps": maintenance.system_init()})


class TruncateView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={200: TruncateResultSerializer})
    def post(self, request):
        return Response({"deleted_items": maintenance.data_truncate()})
