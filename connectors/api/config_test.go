package api_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/config"
)

func TestConfigFromTopology(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		errs []string
	}{
		{"demo", "api:\n  auth: {demo_key_file: .local/k.pem}\n", nil},
		{"idp", "api:\n  listen: 0.0.0.0:8443\n  auth: {jwks_url: https://idp.example/jwks, issuer: https://idp.example, audience: wardstream, roles_claim: realm_access.roles}\n", nil},
		{"idp without audience", "api:\n  auth: {jwks_url: https://idp.example/jwks, issuer: https://idp.example}\n", []string{"set issuer and audience"}},
		{"no auth", "api:\n  listen: 127.0.0.1:8080\n", []string{"api.auth: set jwks_url"}},
		{"both auth", "api:\n  auth: {demo_key_file: k, jwks_url: https://x}\n", []string{"only one"}},
		{"many errors", "api:\n  listen: nope\n  auth: {jwks_url: ftp://x}\n  rate_limit: {requests_per_second: 0, burst: 0}\n  timezone: Mars/Base\n  stream_interval: 0s\n  roles: {sink: localhost:9464}\n",
			[]string{"api.listen", "api.auth.jwks_url", "api.rate_limit.requests_per_second", "api.rate_limit.burst", "api.timezone", "api.stream_interval", "api.roles.sink"}},
		{"unknown key", "api:\n  auth: {demo_key_file: k}\n  colour: red\n", []string{"line 3", "colour"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, err := config.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = api.LoadConfig(root)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, e := range tc.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
		})
	}
}

func TestDefaultTopologyHasValidAPISection(t *testing.T) {
	root, err := config.Load("../../deploy/local/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := api.LoadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.DemoKeyFile == "" || cfg.PublishAckedAlert {
		t.Fatalf("local topology api section: %+v", cfg)
	}
}
