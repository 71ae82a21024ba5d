from django.http import HttpResponse


def signup(request, slug):
    return HttpResponse("TODO")


def signup_sent(request, slug):
    return HttpResponse("TODO")


def confirm(request, token):
    return HttpResponse("TODO")
