from django.http import HttpResponse


def home(request):
    return HttpResponse("TODO")


def privacy(request):
    return HttpResponse("TODO")


def lab_detail(request, slug):
    return HttpResponse("TODO")
