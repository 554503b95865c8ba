package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters"
	"github.com/portcullis/portcullis/filters/jwt"
)

const tokenUsage = "usage: portcullis token new --key FILE --claims JSON [--ttl D]\n" +
	"       portcullis token inspect TOKEN|- [--config FILE --provider NAME]"

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenUsage)
		return 2
	}
	switch args[0] {
	case "new":
		return runTokenNew(args[1:], stdout, stderr)
	case "inspect":
		return runTokenInspect(args[1:], os.Stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, tokenUsage)
		return 0
	}
	fmt.Fprintln(stderr, tokenUsage)
	return 2
}

func runTokenNew(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token new", "DEVELOPMENT TOOL: sign a JWT with a local private key, for tests and local setups.\n"+
		"Production tokens come from your identity provider. The key is a PEM private key (RSA,\n"+
		"EC, Ed25519) or a private JWK (its kid and alg are used; an \"oct\" JWK signs HS256).\n"+
		"iat defaults to now and exp to now+ttl; claims given win. The token goes to stdout.", stderr)
	keyFile := fs.String("key", "", "private key file: PEM or JWK (required)")
	claims := fs.String("claims", "{}", `claims as a JSON object, e.g. '{"sub":"alice","iss":"https://id.example.com/"}'`)
	ttl := fs.Duration("ttl", jwt.DefaultDevTokenTTL, "lifetime when the claims have no exp")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *keyFile == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "token new: --key is required and no arguments are taken")
		return 2
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(stderr, "token new:", err)
		return 1
	}
	var c map[string]any
	d := json.NewDecoder(strings.NewReader(*claims))
	d.UseNumber()
	if err := d.Decode(&c); err != nil || c == nil || d.More() {
		fmt.Fprintln(stderr, "token new: --claims must be one JSON object")
		return 2
	}
	tok, err := jwt.SignDevToken(key, c, *ttl, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "token new:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func runTokenInspect(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("token inspect", "Decode a JWT WITHOUT trusting it: header, claims, times and every problem that can be\n"+
		"seen without keys. With --config (and --provider when it has several JWT providers),\n"+
		"also verify it as that provider would, fetching remote keys, and say which rule fails.\n"+
		"TOKEN '-' reads the token from stdin (keeps it out of shell history). Exit 1 when the\n"+
		"token has a problem or would be rejected.", stderr)
	configPath := fs.String("config", "", "policy document whose provider verifies the token")
	provider := fs.String("provider", "", "name of the providers.jwt entry (default: the only one)")
	token, rest := "", args
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-") {
		token, rest = args[0], args[1:]
	}
	if code, done := parseFlags(fs, rest); done {
		return code
	}
	if token == "" && fs.NArg() == 1 {
		token = fs.Arg(0)
	} else if fs.NArg() > 0 || token == "" {
		fmt.Fprintln(stderr, tokenUsage)
		return 2
	}
	if token == "-" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 1<<20)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "token inspect:", err)
			return 1
		}
		token = strings.TrimSpace(line)
	}
	rep, err := jwt.Inspect(token)
	if err != nil {
		fmt.Fprintln(stderr, "token inspect:", err)
		return 1
	}
	printReport(stdout, rep)
	code := 0
	if len(rep.Problems) > 0 {
		code = 1
	}
	if *configPath != "" {
		if verdict(stdout, stderr, *configPath, *provider, token) != 0 {
			code = 1
		}
	}
	return code
}

func printReport(w io.Writer, rep jwt.Report) {
	show := func(label string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		fmt.Fprintf(w, "%s: %s\n", label, b)
	}
	fmt.Fprintln(w, "# decoded WITHOUT verification: nothing below is trusted")
	show("header", rep.Header)
	show("claims", rep.Claims)
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"issued at", rep.IssuedAt}, {"not before", rep.NotBefore}, {"expires", rep.ExpiresAt}} {
		if !t.at.IsZero() {
			fmt.Fprintf(w, "%s: %s (%s)\n", t.name, t.at.Format(time.RFC3339), relative(t.at))
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
}

func relative(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

// verdict verifies token with the named provider of the document at path.
func verdict(stdout, stderr io.Writer, path, name, token string) int {
	doc, err := config.Load(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	prov, err := pickProvider(doc, name)
	if err != nil {
		fmt.Fprintln(stderr, "token inspect:", err)
		return 1
	}
	opts, err := filters.JWTOptions(doc, prov, filters.Deps{})
	if err != nil {
		fmt.Fprintf(stderr, "token inspect: jwt provider %q: %v\n", prov.Name, err)
		return 1
	}
	opts.Keys.Remote.WaitFirstFetch = false
	a, err := jwt.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, "token inspect:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Keys.Remote.Timeout+opts.Keys.Remote.FirstFetchTimeout)
	defer cancel()
	defer a.Close()
	if err := a.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "token inspect:", err)
		return 1
	}
	id, err := a.Check(ctx, token)
	var ve *jwt.VerifyError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stdout, "verdict: REJECTED by provider %s: %s (%s)\n", prov.Name, ve.Reason, ve.Description)
		return 1
	case err != nil:
		fmt.Fprintf(stdout, "verdict: cannot verify with provider %s: %v\n", prov.Name, err)
		return 1
	}
	fmt.Fprintf(stdout, "verdict: VALID for provider %s: subject %q, key %q, scopes %q\n",
		prov.Name, id.Subject, id.KeyID, strings.Join(id.Scopes, " "))
	return 0
}

func pickProvider(doc *config.Document, name string) (*config.JWTProvider, error) {
	ps := doc.Providers.JWT
	if name != "" {
		if p, ok := ps.ByName(name); ok {
			return p, nil
		}
		return nil, fmt.Errorf("no jwt provider %q in %s", name, doc.Source)
	}
	if len(ps) != 1 {
		return nil, fmt.Errorf("%s has %d jwt providers: choose one with --provider", doc.Source, len(ps))
	}
	return &ps[0], nil
}
