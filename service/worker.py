"""The gunicorn worker class: gevent's, with a deadline on every read from and write to a client.

A sync worker serves one connection at a time, so a client that sends its headers and then
trickles (or withholds) its body holds the whole worker until ``timeout``; two such clients are an
outage of a two-worker pod. gevent serves every connection in a greenlet of its own: a slow client
holds a greenlet, and the worker goes on serving everyone else.

What bounds a slow client:
- the request line and headers must arrive within gunicorn's ``keepalive`` seconds (gevent's
  worker wraps reading them in a timeout of that length, for the first request of a connection
  as for the next ones);
- after that, each read of the body and each write of the answer must make progress within
  ``service.settings.CLIENT_TIMEOUT_S``: a body that stops arriving ends in a 408 (service.app), an answer the
  client stops reading ends the connection.
"""

from gunicorn.workers.ggevent import GeventWorker

from service.settings import CLIENT_TIMEOUT_S


class DeadlineWorker(GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        sock.settimeout(CLIENT_TIMEOUT_S)
        return super().handle_request(listener_name, req, sock, addr)
