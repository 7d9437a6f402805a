package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardstream/wardstream/connectors/api"
)

func rsaJWK(t testing.TB, k *rsa.PublicKey, kid string) api.JWK {
	t.Helper()
	enc := base64.RawURLEncoding
	return api.JWK{Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256", N: enc.EncodeToString(k.N.Bytes()), E: enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

func TestParseJWKS(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sk, _ := api.NewSigningKey(ek)
	ec := sk.JWKS().Keys[0]
	set := func(keys ...api.JWK) []byte { b, _ := json.Marshal(api.JWKS{Keys: keys}); return b }
	tests := []struct {
		name    string
		data    []byte
		kids    []string
		errPart string
	}{
		{"rsa and ec", set(rsaJWK(t, &rk.PublicKey, "r1"), ec), []string{"r1", sk.Kid}, ""},
		{"encryption keys skipped", set(func() api.JWK { j := rsaJWK(t, &rk.PublicKey, "enc"); j.Use = "enc"; return j }()), nil, ""},
		{"unknown kty skipped", set(api.JWK{Kty: "oct", Kid: "h"}), nil, ""},
		{"small rsa", set(rsaJWK(t, &small.PublicKey, "s")), nil, "too small"},
		{"ec off curve", set(func() api.JWK { j := ec; j.Y = j.X; return j }()), nil, "EC point"},
		{"bad curve", set(func() api.JWK { j := ec; j.Crv = "P-192"; return j }()), nil, "curve"},
		{"bad base64", set(api.JWK{Kty: "RSA", Kid: "x", N: "!!", E: "AQAB"}), nil, "modulus"},
		{"not json", []byte("<html>"), nil, "decoding JWKS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := api.ParseJWKS(tc.data)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err %v, want %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tc.kids) {
				t.Fatalf("%d keys, want %v", len(keys), tc.kids)
			}
			for _, k := range tc.kids {
				if keys[k] == nil {
					t.Fatalf("kid %s missing", k)
				}
			}
		})
	}
}

// TestJWKSCacheRotation serves an identity provider's JWKS over HTTP:
// RS256 tokens verify, a token signed by a newly rotated key triggers one
// refetch, and unknown kids do not hammer the provider.
func TestJWKSCacheRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	var keys atomic.Value
	keys.Store([]api.JWK{rsaJWK(t, &k1.PublicKey, "k1")})
	var fetches atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(api.JWKS{Keys: keys.Load().([]api.JWK)})
	}))
	defer idp.Close()
	cfg := api.DefaultConfig().Auth
	cfg.RolesClaim = "realm_access.roles"
	cache := &api.JWKSCache{URL: idp.URL, MaxAge: time.Hour, MinRefresh: time.Hour}
	v := api.NewVerifier(cfg, cache)
	sign := func(k *rsa.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "u1", "tenant": "t1",
			"realm_access": map[string]any{"roles": []string{"offline_access", "analyst"}}, "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	p, err := v.Verify(ctx, sign(k1, "k1"))
	if err != nil || p.User != "u1" || p.Tenant != "t1" || strings.Join(p.Roles, ",") != "analyst" {
		t.Fatalf("verify k1: %+v %v", p, err)
	}
	// Rotation: the provider now publishes k2 as well.
	keys.Store([]api.JWK{rsaJWK(t, &k1.PublicKey, "k1"), rsaJWK(t, &k2.PublicKey, "k2")})
	cache.MinRefresh = 0
	if _, err := v.Verify(ctx, sign(k2, "k2")); err != nil {
		t.Fatalf("verify rotated key: %v", err)
	}
	n := fetches.Load()
	cache.MinRefresh = time.Hour
	for i := 0; i < 5; i++ {
		if _, err := v.Verify(ctx, sign(k2, "unknown")); err == nil {
			t.Fatal("unknown kid verified")
		}
	}
	// The rotation refetch just happened: within MinRefresh, unknown kids
	// cause no further fetch.
	if got := fetches.Load(); got != n {
		t.Fatalf("%d fetches for 5 unknown-kid tokens within MinRefresh, want 0", got-n)
	}
	// alg=none and HS256 with the public key as secret are refused.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "tenant": "t", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := v.Verify(ctx, none); err == nil {
		t.Fatal("alg none accepted")
	}
}

// TestJWKSCacheSlowProvider: while a refetch for an unknown kid hangs on a
// slow identity provider, tokens signed with a cached key verify at once.
func TestJWKSCacheSlowProvider(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	var slow atomic.Bool
	release := make(chan struct{})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			<-release
		}
		_ = json.NewEncoder(w).Encode(api.JWKS{Keys: []api.JWK{rsaJWK(t, &k1.PublicKey, "k1")}})
	}))
	defer idp.Close()
	defer close(release)
	cache := &api.JWKSCache{URL: idp.URL, MaxAge: time.Hour, MinRefresh: 0}
	ctx := context.Background()
	if _, err := cache.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	stuck := make(chan error, 1)
	go func() { _, err := cache.Key(ctx, "made-up"); stuck <- err }()
	time.Sleep(50 * time.Millisecond) // let the refetch start and block
	start := time.Now()
	if _, err := cache.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("a cached key waited %v on the slow provider", el)
	}
	// A second unknown kid waits for the same fetch, bounded by its context.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := cache.Key(short, "other-made-up"); err == nil {
		t.Fatal("unknown kid resolved")
	}
	select {
	case err := <-stuck:
		t.Fatalf("the refetch returned early: %v", err)
	default:
	}
}

func TestRolesClaimForms(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sk, _ := api.NewSigningKey(ek)
	cfg := api.DefaultConfig().Auth
	v := api.NewVerifier(cfg, sk.Keys())
	for _, tc := range []struct {
		roles any
		want  string
	}{
		{"admin analyst", "admin,analyst"},
		{"medical_staff,bogus", "medical_staff"},
		{[]any{"analyst", "analyst", "admin"}, "admin,analyst"},
	} {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "u", "tenant": "t", "roles": tc.roles, "exp": time.Now().Add(time.Minute).Unix()})
		tok.Header["kid"] = sk.Kid
		s, _ := tok.SignedString(ek)
		p, err := v.Verify(context.Background(), s)
		if err != nil || strings.Join(p.Roles, ",") != tc.want {
			t.Fatalf("roles %v: %+v %v", tc.roles, p, err)
		}
	}
}

func TestSigningKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key.pem")
	a, err := api.LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v: %v", st.Mode(), err)
	}
	b, err := api.LoadOrCreateSigningKey(path)
	if err != nil || a.Kid != b.Kid {
		t.Fatalf("reloaded kid %s vs %s: %v", b.Kid, a.Kid, err)
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.LoadOrCreateSigningKey(path); err == nil {
		t.Fatal("junk key file accepted")
	}
}

func FuzzParseJWKS(f *testing.F) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sk, _ := api.NewSigningKey(ek)
	good, _ := json.Marshal(sk.JWKS())
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-521","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := api.ParseJWKS(data)
		if err == nil {
			for kid, k := range keys {
				if k == nil {
					t.Fatalf("nil key for kid %q", kid)
				}
			}
		}
	})
}

// FuzzVerify feeds arbitrary bearer tokens to the verifier: it must never
// panic and never accept a token not signed by the key.
func FuzzVerify(f *testing.F) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sk, _ := api.NewSigningKey(ek)
	cfg := api.DefaultConfig().Auth
	good, _ := sk.Mint(cfg, api.TokenRequest{User: "u", Tenant: "t", Roles: []string{"admin"}, TTL: time.Hour}, time.Now())
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3] + "abc")
	f.Add("a.b.c")
	v := api.NewVerifier(cfg, sk.Keys())
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err == nil && tok != good && (p.User != "u" || p.Tenant != "t") {
			t.Fatalf("forged token accepted: %+v", p)
		}
	})
}
