package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// inProcess returns a transport that serves requests to the issuer's
// host with h directly (the provider lives in this process: no DNS, no
// socket), and everything else over the network.
func inProcess(issuer string, h http.Handler) http.RoundTripper {
	u, _ := url.Parse(issuer)
	return &inProcessTransport{host: u.Host, scheme: u.Scheme, h: h, next: http.DefaultTransport}
}

type inProcessTransport struct {
	host, scheme string
	h            http.Handler
	next         http.RoundTripper
}

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.URL.Scheme != t.scheme {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.RequestURI = req.URL.RequestURI()
	r.Host = t.host
	r.RemoteAddr = "127.0.0.1:0"
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
