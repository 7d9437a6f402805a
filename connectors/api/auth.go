package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a token may carry. A user with several roles gets the union of
// their permissions.
const (
	// RoleMedicalStaff reads everything of its tenant, acknowledges alerts,
	// writes schedules and sends care commands (reminders, pings,
	// emergency mode).
	RoleMedicalStaff = "medical_staff"
	// RoleAdmin may do everything medical staff may, plus device shadow
	// changes and fleet commands (factory reset, secure device).
	RoleAdmin = "admin"
	// RoleAnalyst reads adherence, missed doses, alerts and pipeline health;
	// it writes nothing.
	RoleAnalyst = "analyst"
)

// knownRoles are the roles [Principal] keeps; other role names in a token
// are ignored (an identity provider often adds its own).
var knownRoles = []string{RoleAdmin, RoleMedicalStaff, RoleAnalyst}

// Principal is the verified caller of a request.
type Principal struct {
	// User is the token's subject (sub), else its preferred_username.
	User string
	// Tenant is the only tenant whose data the caller sees.
	Tenant string
	// Roles are the caller's known roles, sorted.
	Roles []string
	// Expires is when the token expires; long-lived responses (the live
	// stream) end then.
	Expires time.Time
}

// Has reports whether p holds any of roles.
func (p *Principal) Has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// RoleString returns the roles joined with commas, for the audit record.
func (p *Principal) RoleString() string { return strings.Join(p.Roles, ",") }

// Sentinel auth errors. They map to HTTP 401 ([ErrNoToken], [ErrBadToken])
// and 403 ([ErrNoTenant], [ErrNoRole]).
var (
	// ErrNoToken is returned when a request carries no bearer token.
	ErrNoToken = errors.New("missing bearer token")
	// ErrBadToken wraps every reason a token fails verification (signature,
	// expiry, issuer, audience, unknown key).
	ErrBadToken = errors.New("invalid token")
	// ErrNoTenant is returned for a valid token without a tenant claim.
	ErrNoTenant = errors.New("token has no tenant claim")
	// ErrNoRole is returned for a valid token with none of the known roles.
	ErrNoRole = errors.New("token has none of the roles admin, medical_staff, analyst")
)

// KeySource returns the public key for a key id. It is how [Verifier]
// finds keys: a [JWKSCache] for a real identity provider, a [StaticKeys]
// for the demo key.
type KeySource interface {
	// Key returns the verification key for kid ("" when the token names
	// none: a source with exactly one key returns it).
	Key(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// Verifier checks bearer tokens and turns them into a [Principal]. It is
// safe for concurrent use.
type Verifier struct {
	keys   KeySource
	parser *jwt.Parser
	cfg    AuthConfig
}

// NewVerifier returns a verifier using keys, checking issuer and audience
// when cfg sets them. It does no I/O.
func NewVerifier(cfg AuthConfig, keys KeySource) *Verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), // an iat beyond the leeway in the future is refused
		jwt.WithLeeway(cfg.Leeway.D()),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{keys: keys, parser: jwt.NewParser(opts...), cfg: cfg}
}

// Verify checks raw (a compact JWS) and returns its principal.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.keys.Key(ctx, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	p := &Principal{}
	p.User, _ = claims["sub"].(string)
	if p.User == "" {
		p.User, _ = claims["preferred_username"].(string)
	}
	if p.User == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrBadToken)
	}
	p.Tenant, _ = lookupClaim(claims, v.cfg.TenantClaim).(string)
	if p.Tenant == "" {
		return nil, ErrNoTenant
	}
	for _, r := range claimStrings(lookupClaim(claims, v.cfg.RolesClaim)) {
		if slices.Contains(knownRoles, r) && !slices.Contains(p.Roles, r) {
			p.Roles = append(p.Roles, r)
		}
	}
	if len(p.Roles) == 0 {
		return nil, ErrNoRole
	}
	slices.Sort(p.Roles)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Time
	}
	return p, nil
}

// lookupClaim follows a dotted path ("realm_access.roles") into claims.
func lookupClaim(claims map[string]any, path string) any {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// claimStrings accepts a roles claim written as one string (space or comma
// separated) or as a JSON array of strings.
func claimStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// bearer extracts the token of an "Authorization: Bearer X" header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: Authorization header is not 'Bearer <token>'", ErrBadToken)
	}
	return strings.TrimSpace(tok), nil
}

// JWK is one JSON Web Key (RFC 7517) of type RSA or EC.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	// RSA.
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// EC.
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// ParseJWKS decodes a key set and returns its signature keys by kid. Keys
// that are not for signatures (use "enc") or of unknown type are skipped;
// a malformed RSA or EC key is an error.
func ParseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS (%d bytes): %w", len(data), err)
	}
	out := make(map[string]crypto.PublicKey, len(set.Keys))
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pk, err := k.PublicKey()
		if errors.Is(err, errUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
		}
		out[k.Kid] = pk
	}
	return out, nil
}

var errUnsupportedKey = errors.New("unsupported key type")

// PublicKey decodes the key.
func (k JWK) PublicKey() (crypto.PublicKey, error) {
	dec := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		n, err := dec.DecodeString(k.N)
		if err != nil || len(n) == 0 {
			return nil, fmt.Errorf("bad RSA modulus n")
		}
		e, err := dec.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("bad RSA exponent e")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too small (want >= 2048)", pub.N.BitLen())
		}
		return pub, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported EC curve %q", k.Crv)
		}
		x, errX := dec.DecodeString(k.X)
		y, errY := dec.DecodeString(k.Y)
		if errX != nil || errY != nil {
			return nil, fmt.Errorf("bad EC coordinates")
		}
		// Build the uncompressed point and let crypto/ecdh-backed parsing
		// check that it is on the curve.
		size := (curve.Params().BitSize + 7) / 8
		if len(x) > size || len(y) > size {
			return nil, fmt.Errorf("EC coordinates longer than the curve")
		}
		pt := make([]byte, 1+2*size)
		pt[0] = 4
		copy(pt[1+size-len(x):1+size], x)
		copy(pt[1+2*size-len(y):], y)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	}
	return nil, errUnsupportedKey
}

// StaticKeys is a fixed key set (the demo key, or keys in tests).
type StaticKeys map[string]crypto.PublicKey

// Key implements [KeySource].
func (s StaticKeys) Key(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	if kid == "" && len(s) == 1 {
		for _, k := range s {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

// JWKSCache fetches an identity provider's JWKS over HTTP and caches it.
// An unknown kid triggers a refetch (key rotation), at most once per
// MinRefresh; the set is also refetched after MaxAge. It is safe for
// concurrent use: one fetch runs at a time (others needing it wait for it),
// and a request whose key is cached never waits on the network, so a slow
// identity provider or tokens with made-up key ids cannot stall requests
// with good tokens.
type JWKSCache struct {
	// URL is the JWKS endpoint.
	URL string
	// Client fetches it (http.DefaultClient with a 10 s timeout when nil).
	Client *http.Client
	// MaxAge is how long a fetched set is used before it is refetched.
	MaxAge time.Duration
	// MinRefresh bounds refetches caused by unknown key ids.
	MinRefresh time.Duration

	mu       sync.Mutex
	keys     map[string]crypto.PublicKey
	fetched  time.Time
	tried    time.Time
	lastErr  error
	inflight chan struct{}
}

// Key implements [KeySource].
//
// Fetches are bounded: after an attempt, the next comes no sooner than
// MinRefresh (2 s while no set was ever fetched), whether the set is stale
// or a kid unknown, so that a failing identity provider or tokens with
// made-up key ids cannot make every request refetch. A stale set is
// refreshed in the background while its keys go on being used.
func (c *JWKSCache) Key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	now := time.Now()
	c.mu.Lock()
	k, kerr := StaticKeys(c.keys).Key(ctx, kid)
	stale := c.keys == nil || now.Sub(c.fetched) > c.MaxAge
	retry := c.MinRefresh
	if c.keys == nil {
		retry = min(retry, 2*time.Second)
	}
	canTry := c.tried.IsZero() || now.Sub(c.tried) >= retry
	if kerr == nil {
		if stale && canTry && c.inflight == nil {
			c.startFetchLocked(ctx)
		}
		c.mu.Unlock()
		return k, nil
	}
	if c.inflight == nil {
		if !canTry {
			err := kerr
			if c.keys == nil && c.lastErr != nil {
				err = c.lastErr
			}
			c.mu.Unlock()
			return nil, err
		}
		c.startFetchLocked(ctx)
	}
	wait := c.inflight
	c.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil && c.lastErr != nil {
		return nil, c.lastErr
	}
	return StaticKeys(c.keys).Key(ctx, kid)
}

// startFetchLocked starts fetching the set (c.mu held); the fetch outlives
// the request that triggered it, and c.inflight is closed when it is done.
func (c *JWKSCache) startFetchLocked(ctx context.Context) {
	done := make(chan struct{})
	c.inflight, c.tried = done, time.Now()
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		keys, err := c.fetch(fctx)
		cancel()
		c.mu.Lock()
		if err == nil {
			c.keys, c.fetched = keys, time.Now()
		}
		c.lastErr = err
		c.inflight = nil
		c.mu.Unlock()
		close(done)
	}()
}

func (c *JWKSCache) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	cl := c.Client
	if cl == nil {
		cl = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS request %s: %w", c.URL, err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS %s: HTTP %d", c.URL, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS %s: %w", c.URL, err)
	}
	return ParseJWKS(data)
}

// SigningKey is a private key that mints tokens (the demo identity
// provider) together with its key id.
type SigningKey struct {
	Kid string
	Key *ecdsa.PrivateKey
}

// LoadOrCreateSigningKey reads a PEM (PKCS#8) ECDSA P-256 key from path,
// creating it with mode 0600 when the file does not exist.
func LoadOrCreateSigningKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generating demo signing key: %w", gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(k)
		if merr != nil {
			return nil, fmt.Errorf("encoding demo signing key: %w", merr)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating directory for demo signing key %s: %w", path, err)
		}
		data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		// O_EXCL: when two processes race to create it, one wins and the
		// other reads the winner's key.
		f, oerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if oerr == nil {
			_, werr := f.Write(data)
			cerr := f.Close()
			if werr != nil || cerr != nil {
				return nil, fmt.Errorf("writing demo signing key %s: %w", path, errors.Join(werr, cerr))
			}
		} else if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading demo signing key %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading demo signing key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("demo signing key %s holds no PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing demo signing key %s: %w", path, err)
	}
	k, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("demo signing key %s is not an ECDSA P-256 key", path)
	}
	return NewSigningKey(k)
}

// NewSigningKey wraps k; its kid is the RFC 7638 thumbprint of the public key.
func NewSigningKey(k *ecdsa.PrivateKey) (*SigningKey, error) {
	j, err := publicJWK(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	// RFC 7638: the required members in lexicographic order, no spaces.
	thumb := sha256.Sum256([]byte(`{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`))
	return &SigningKey{Kid: base64.RawURLEncoding.EncodeToString(thumb[:]), Key: k}, nil
}

func publicJWK(pub *ecdsa.PublicKey) (JWK, error) {
	pt, err := pub.Bytes()
	if err != nil {
		return JWK{}, fmt.Errorf("encoding public key: %w", err)
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	enc := base64.RawURLEncoding
	return JWK{Kty: "EC", Crv: pub.Curve.Params().Name, Use: "sig", Alg: "ES256",
		X: enc.EncodeToString(pt[1 : 1+size]), Y: enc.EncodeToString(pt[1+size:])}, nil
}

// JWKS returns the public key set to serve at /.well-known/jwks.json.
func (s *SigningKey) JWKS() JWKS {
	j, _ := publicJWK(&s.Key.PublicKey) // cannot fail: NewSigningKey encoded it
	j.Kid = s.Kid
	return JWKS{Keys: []JWK{j}}
}

// Keys returns the key as a [KeySource].
func (s *SigningKey) Keys() StaticKeys { return StaticKeys{s.Kid: &s.Key.PublicKey} }

// TokenRequest describes a token to mint.
type TokenRequest struct {
	User     string
	Tenant   string
	Roles    []string
	Issuer   string
	Audience string
	TTL      time.Duration
}

// Mint signs an ES256 token for req using claim names from cfg.
func (s *SigningKey) Mint(cfg AuthConfig, req TokenRequest, now time.Time) (string, error) {
	if req.User == "" || req.Tenant == "" || len(req.Roles) == 0 || req.TTL <= 0 {
		return "", errors.New("minting a token needs a user, a tenant, at least one role and a positive ttl")
	}
	claims := jwt.MapClaims{
		"sub": req.User,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(req.TTL).Unix(),
	}
	if req.Issuer != "" {
		claims["iss"] = req.Issuer
	}
	if req.Audience != "" {
		claims["aud"] = req.Audience
	}
	// Dotted claim paths become nested objects, mirroring lookupClaim.
	setClaim(claims, cfg.TenantClaim, req.Tenant)
	roles := make([]any, len(req.Roles))
	for i, r := range req.Roles {
		roles[i] = r
	}
	setClaim(claims, cfg.RolesClaim, roles)
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.Kid
	signed, err := t.SignedString(s.Key)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return signed, nil
}

func setClaim(claims map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := claims
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

// jwt's reasons, named here so that handlers can tell clients why a token
// failed without exposing the parser's full message.
var (
	errTokenExpired     = jwt.ErrTokenExpired
	errTokenNotValidYet = jwt.ErrTokenNotValidYet
	errTokenSignature   = jwt.ErrTokenSignatureInvalid
	errTokenIssuer      = jwt.ErrTokenInvalidIssuer
	errTokenAudience    = jwt.ErrTokenInvalidAudience
	errTokenMalformed   = jwt.ErrTokenMalformed
)
