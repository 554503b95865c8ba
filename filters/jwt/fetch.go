package jwt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// newHTTPClient builds the fetcher's own client: TLS 1.2+ with the system roots or the
// configured CA, bounded timeouts, at most three redirects and never to plain http
// unless allowed.
func newHTTPClient(o RemoteOptions) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLS != nil {
		tc = o.TLS.Clone()
	}
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("remote keys: no certificate in the CA PEM")
		}
		tc.RootCAs = pool
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		// Fetches are minutes apart: no connection is kept between them, so none
		// outlives the provider (one busy clearing a fetch canceled by Close is not
		// idle when Close releases idle connections, and stayed open for ~90s).
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}
	return &http.Client{
		Transport: t,
		Timeout:   o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && !o.AllowHTTP {
				return fmt.Errorf("redirect to %s refused: https is required", req.URL.Scheme)
			}
			return nil
		},
	}, nil
}

// get fetches url and returns the body, capped at MaxResponseBytes, and the headers.
func (r *RemoteKeys) get(ctx context.Context, url string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: read body: %w", url, err)
	}
	if int64(len(body)) > r.opts.MaxResponseBytes {
		return nil, nil, fmt.Errorf("fetch %s: response exceeds %d bytes", url, r.opts.MaxResponseBytes)
	}
	return body, resp.Header, nil
}

// refreshInterval derives the next refresh from a Cache-Control value: max-age (no-store
// and no-cache count as 0), else DefaultRefresh, clamped to [MinRefresh, MaxRefresh].
func refreshInterval(cacheControl string, o RemoteOptions) time.Duration {
	d, ok := maxAge(cacheControl)
	if !ok {
		d = DefaultRefresh
	}
	return min(max(d, o.MinRefresh), o.MaxRefresh)
}

func maxAge(cc string) (time.Duration, bool) {
	found, age := false, time.Duration(0)
	for cc != "" {
		var dir string
		dir, cc, _ = strings.Cut(cc, ",")
		dir = strings.ToLower(strings.TrimSpace(dir))
		switch {
		case dir == "no-store" || dir == "no-cache":
			return 0, true
		case strings.HasPrefix(dir, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(dir[len("max-age="):], `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			found, age = true, time.Duration(min(n, int64(365*24*3600)))*time.Second
		}
	}
	return age, found
}
