package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/hmac"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

const signSummary = `Sign a request as a client of an hmac provider would, and print the headers to send
followed by a ready curl command. Flags come before METHOD.

  portcullis sign --key-id billing-1 --secret env:BILLING_KEY POST https://api.example.com/orders '{"n":1}'
  portcullis sign --scheme github --secret file:hook.secret POST http://127.0.0.1:8000/hooks/github @payload.json

BODY is the literal body, or @FILE to read it from a file. SECRETREF is env:NAME or
file:PATH: the raw HMAC key (as the provider's secret), or for an asymmetric --alg a PEM
private key. The secret is never printed.`

// signOptions are the sign command's flags.
type signOptions struct {
	scheme, keyID, secret, alg, components, label, tag string
	expires                                            time.Duration
	noNonce                                            bool
	created                                            int64
	headers                                            headerFlags
}

// headerFlags collects repeated --header "Name: value" flags.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }

func (h *headerFlags) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
		return errors.New(`expected "Name: value"`)
	}
	*h = append(*h, v)
	return nil
}

func runSign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: portcullis sign [flags] METHOD URL [BODY]\n\n%s\n\nflags:\n", signSummary)
		fs.PrintDefaults()
	}
	var o signOptions
	fs.StringVar(&o.scheme, "scheme", "rfc9421", "rfc9421, github, stripe, slack or generic")
	fs.StringVar(&o.keyID, "key-id", "", "rfc9421: the key id (keyid parameter); required")
	fs.StringVar(&o.secret, "secret", "", "SECRETREF: env:NAME or file:PATH; required")
	fs.StringVar(&o.alg, "alg", string(httpsig.HMACSHA256), "rfc9421: hmac-sha256, ed25519, ecdsa-p256-sha256, rsa-pss-sha512 or rsa-v1_5-sha256")
	fs.StringVar(&o.components, "components", "@method,@target-uri", "rfc9421: covered components, comma-separated (content-digest is added when there is a body)")
	fs.StringVar(&o.label, "label", httpsig.DefaultLabel, "rfc9421: the signature label")
	fs.StringVar(&o.tag, "tag", "", "rfc9421: the tag parameter (none when empty)")
	fs.DurationVar(&o.expires, "expires", 0, "rfc9421: add expires = created + this (0: none)")
	fs.BoolVar(&o.noNonce, "no-nonce", false, "rfc9421: omit the nonce")
	fs.Int64Var(&o.created, "created", 0, "signature time in Unix seconds (default now; for testing clock skew)")
	fs.Var(&o.headers, "header", `extra request header "Name: value" to send (and cover with --components); repeatable`)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	req, bodyRef, err := signRequest(fs.Args(), o.headers)
	if err == nil {
		err = o.check(fs)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sign:", err)
		return 2
	}
	if err := o.sign(req); err != nil {
		fmt.Fprintln(stderr, "sign:", err)
		return 1
	}
	printSigned(stdout, req, o.headers, bodyRef)
	return 0
}

// check validates the flags against the scheme.
func (o *signOptions) check(fs *flag.FlagSet) error {
	if o.secret == "" {
		return errors.New("--secret is required (env:NAME or file:PATH)")
	}
	if o.scheme == string(hmac.SchemeRFC9421) {
		if o.keyID == "" {
			return errors.New("--key-id is required for rfc9421")
		}
		return nil
	}
	switch hmac.Scheme(o.scheme) {
	case hmac.SchemeGitHub, hmac.SchemeStripe, hmac.SchemeSlack, hmac.SchemeGeneric:
	default:
		return fmt.Errorf("unknown --scheme %q: expected rfc9421, github, stripe, slack or generic", o.scheme)
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "key-id", "alg", "components", "label", "tag", "expires", "no-nonce":
			err = fmt.Errorf("--%s applies to --scheme rfc9421 only", f.Name)
		}
	})
	return err
}

// signRequest builds the request from METHOD URL [BODY]; bodyRef is the body as curl
// takes it ("@FILE" or the literal).
func signRequest(args []string, headers headerFlags) (req *http.Request, bodyRef string, err error) {
	if len(args) < 2 || len(args) > 3 {
		return nil, "", errors.New("expected METHOD URL [BODY] after the flags")
	}
	u, err := url.Parse(args[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, "", fmt.Errorf("URL %q: expected an absolute http:// or https:// URL without credentials", args[1])
	}
	var body []byte
	if len(args) == 3 {
		bodyRef = args[2]
		if body, err = readBodyArg(bodyRef); err != nil {
			return nil, "", err
		}
	}
	req, err = http.NewRequest(args[0], u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("request: %w", err)
	}
	if len(body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return req, bodyRef, nil
}

// readBodyArg returns a literal body, or reads @FILE (at most httpsig.DefaultMaxBody).
func readBodyArg(arg string) ([]byte, error) {
	path, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return []byte(arg), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, httpsig.DefaultMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if len(b) > httpsig.DefaultMaxBody {
		return nil, fmt.Errorf("body: %s is larger than %d bytes", path, httpsig.DefaultMaxBody)
	}
	return b, nil
}

// sign resolves the secret and adds the scheme's headers to req.
func (o *signOptions) sign(req *http.Request) error {
	ref, err := config.ParseSecret(o.secret, "")
	if err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	secret, err := ref.Resolve()
	if err != nil {
		return err
	}
	defer clear(secret)
	now := time.Now()
	if o.created != 0 {
		now = time.Unix(o.created, 0)
	}
	if o.scheme == string(hmac.SchemeRFC9421) {
		return o.signRFC9421(req, secret, now)
	}
	return signWebhook(hmac.Scheme(o.scheme), req, secret, now.Unix())
}

func (o *signOptions) signRFC9421(req *http.Request, secret []byte, now time.Time) error {
	alg := httpsig.Algorithm(o.alg)
	var (
		key *httpsig.Key
		err error
	)
	if alg == httpsig.HMACSHA256 {
		key, err = httpsig.NewHMACKey(o.keyID, secret)
	} else {
		key, err = httpsig.ParseKeyPEM(o.keyID, alg, secret)
		if err == nil && !key.CanSign() {
			err = errors.New("--secret holds a public key; signing needs the private key")
		}
	}
	if err != nil {
		return err
	}
	var comps []string
	for _, c := range strings.Split(o.components, ",") {
		if c = strings.TrimSpace(c); c != "" {
			comps = append(comps, c)
		}
	}
	s, err := httpsig.NewSigner(key, httpsig.SignerOptions{
		Label: o.label, Components: comps, Expires: o.expires, NoNonce: o.noNonce, Tag: o.tag,
		Now: func() time.Time { return now },
	})
	if err != nil {
		return err
	}
	return s.SignRequest(req)
}

// signWebhook adds a webhook scheme's headers, as the sending service would.
func signWebhook(scheme hmac.Scheme, req *http.Request, secret []byte, ts int64) error {
	body, err := readAll(req)
	if err != nil {
		return err
	}
	t := strconv.FormatInt(ts, 10)
	switch scheme {
	case hmac.SchemeGitHub:
		req.Header.Set("X-Hub-Signature-256", hmac.SignGitHub(secret, body))
	case hmac.SchemeStripe:
		req.Header.Set("Stripe-Signature", hmac.SignStripe(secret, ts, body))
	case hmac.SchemeSlack:
		req.Header.Set("X-Slack-Request-Timestamp", t)
		req.Header.Set("X-Slack-Signature", hmac.SignSlack(secret, ts, body))
	case hmac.SchemeGeneric:
		target := req.URL.EscapedPath()
		if target == "" {
			target = "/"
		}
		if req.URL.RawQuery != "" {
			target += "?" + req.URL.RawQuery
		}
		req.Header.Set("X-Timestamp", t)
		req.Header.Set("X-Signature", hmac.SignGeneric(secret, ts, req.Method, target, body))
	}
	return nil
}

func readAll(req *http.Request) ([]byte, error) {
	if req.GetBody == nil {
		return nil, nil
	}
	rc, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// signedHeaders are the headers a signature adds, in the order they are printed.
var signedHeaders = []string{"Content-Digest", "Signature-Input", "Signature", "X-Hub-Signature-256",
	"Stripe-Signature", "X-Slack-Request-Timestamp", "X-Slack-Signature", "X-Timestamp", "X-Signature"}

// printSigned prints the headers to send ("Name: value" lines), a blank line and a
// curl command sending exactly that request.
func printSigned(w io.Writer, req *http.Request, extra headerFlags, bodyRef string) {
	var lines []string
	for _, h := range extra {
		name, value, _ := strings.Cut(h, ":")
		lines = append(lines, strings.TrimSpace(name)+": "+strings.TrimSpace(value))
	}
	for _, name := range signedHeaders {
		for _, v := range req.Header.Values(name) {
			lines = append(lines, name+": "+v)
		}
	}
	curl := []string{"curl", "-sS", "-X", shellQuote(req.Method)}
	for _, l := range lines {
		fmt.Fprintln(w, l)
		curl = append(curl, "-H", shellQuote(l))
	}
	if bodyRef != "" {
		curl = append(curl, "--data-binary", shellQuote(bodyRef))
	}
	curl = append(curl, shellQuote(req.URL.String()))
	fmt.Fprintf(w, "\n%s\n", strings.Join(curl, " "))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
