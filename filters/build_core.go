package filters

import (
	"fmt"
	"slices"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/apikey"
	"github.com/portcullis/portcullis/filters/ip"
	"github.com/portcullis/portcullis/filters/scopes"
	"github.com/portcullis/portcullis/pkg/engine"
)

func buildAPIKey(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.APIKeyStage)
	var keys []apikey.Key
	for _, k := range b.doc.Providers.APIKeys {
		if len(spec.Keys) > 0 && !slices.Contains(spec.Keys, k.ID) {
			continue
		}
		if len(k.Hash.Sum) != 64 {
			return nil, nil, fmt.Errorf("key %s: hash is not a sha512 digest", k.ID)
		}
		keys = append(keys, apikey.Key{ID: k.ID, Subject: k.Subject, Hash: [64]byte(k.Hash.Sum),
			Scopes: k.Scopes, Expires: k.Expires, AllowedIPs: k.AllowedIPs, Disabled: k.Disabled})
	}
	srcs := make([]apikey.Source, len(spec.Sources))
	for i, s := range spec.Sources {
		srcs[i] = apikey.Source{Header: s.Header, Query: s.Query, Bearer: s.Bearer}
	}
	a, err := apikey.New(keys, apikey.Options{Sources: srcs, Now: b.deps.Now})
	if err != nil {
		return nil, nil, err
	}
	// A key in the URL always goes (it would end up in upstream access logs); headers
	// go unless the policy forwards credentials.
	p.StripQuery = append(p.StripQuery, a.QueryParams()...)
	if !spec.ForwardCredentials {
		p.HideHeaders = append(p.HideHeaders, a.CredentialHeaders()...)
	}
	for _, s := range spec.Sources {
		if s.Bearer {
			p.Challenges = append(p.Challenges, `Bearer realm="portcullis"`)
		} else {
			p.Challenges = append(p.Challenges, `APIKey realm="portcullis"`)
		}
	}
	return nil, a, nil
}

func buildIP(_ *builder, st *config.Stage, _ *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.IPStage)
	f, err := ip.New(ip.Options{Allow: spec.Allow, Deny: spec.Deny})
	return f, nil, err
}

func buildScopes(_ *builder, st *config.Stage, _ *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.ScopesStage)
	f, err := scopes.New(scopes.Options{Any: spec.Any, All: spec.All})
	return f, nil, err
}
